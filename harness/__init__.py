"""The lab's generic engine: the run's lifecycle, backends, the protocols and capabilities roles implement, pure
generators and their interpreter, the store, the CLI. It knows no concrete DB, workload or nemesis; they come in
through the registry. docs/architecture.md: the data flow, the import rules, the capabilities."""
