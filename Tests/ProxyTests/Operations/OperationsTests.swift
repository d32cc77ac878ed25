import Testing

/// Tests of Sources/Proxy/Operations (systemd integration); `swift test --filter Operations` runs them all.
@Suite enum OperationsTests {}
