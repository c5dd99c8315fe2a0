"""reports: the HTML report of a run, the campaign index, and the server behind `harness serve` (docs/reports.md).

Public functions (the harness CLI calls exactly these):
- `reports.render.render_run(run_dir) -> Path`: run_dir/report.html (and summary.json); never fails on a partial
  run directory.
- `reports.index.render_index(store) -> Path`: store/index.html.
- `reports.serve.make_app(store) -> aiohttp.web.Application` and `reports.serve.serve(store, port, host)`.

Reads run directories only; imports nothing of harness, raftkv, nemesis or workloads (tests/test_architecture.py).
Modules are imported lazily by their users: importing this package costs nothing.
"""
