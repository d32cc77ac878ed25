import Testing

/// Tests of Sources/AggOperations (systemd integration); `swift test --filter Operations` runs them all.
@Suite enum OperationsTests {}
