"""Reports: markdown tables and PNG plots regenerated from every CSV under ``results/``, in stages.

``load`` reads and checks the rows (``frame`` types them); ``aggregate`` makes one table per grid, task,
budget, device and precision; ``tables`` and ``notes`` write the markdown of a table and the lines under
it (each a section of ``pages.SECTIONS``); ``figures`` draws its plots (one function per figure, in
``figures.FIGURES``); ``pages`` assembles the pages and the index, and ``install`` swaps them into
``reports/``. ``history`` is the speed-history page; ``compare`` and ``reproduce`` set two sets of rows
side by side.

``pages.write_reports(results_dir, out_dir)`` renders ``README.md`` (the index, with published
reference points kept apart from our numbers) and one page per grid and task, each with one table per
budget and device, notes on how the numbers were made, and plots. The output depends on the rows alone
(no rendering timestamps, stable orders, fixed float formats, PNGs without metadata), so the same
results give byte-identical reports. ``pages.check_reports`` renders into a temporary folder and
compares, for CI.

Writing never removes or overwrites a file the harness did not write. Everything is rendered into a
fresh temporary folder first (a new ``out_dir`` is then renamed into place whole); ``out_dir/.generated``
lists the files the harness wrote there. Files it listed that are no longer generated are removed,
listed ones are replaced (each with an atomic ``os.replace``; on any error the ones already replaced
are put back), and a new file that would overwrite an unlisted one is refused before anything changes
(``install``). A missing results folder, one without CSVs, or one whose CSVs hold no valid row (empty,
header-only, damaged throughout) is refused too, so a typo in ``--results-dir`` cannot replace the
reports with an empty set.

Aggregation: of rows sharing a ``run_id`` (a ``--rerun``) only the last counts; runs with
``status == ok`` make the means (mean ± sample std over seeds, medians for speed); collapsed and failed
runs are counted in their own column and flagged, never averaged in. Speeds measured on different CPUs
are never pooled: each table takes its speed columns from the runs on one CPU (the one with the most ok
runs in it, see ``frame.speed_cpu``); runs on other CPUs count toward accuracy only, and the page says
so. Speeds measured while other processes used the cores (``speed_clean == false``) are left out of the
speed columns too.
"""
