import AggConfig
import ArgumentParser

/// The flags aggclient and aggserver share word for word, for `run`/`serve` and `check-config`; each overrides the
/// config file key of the same name.
public struct SharedDaemonFlags: ParsableArguments {
    @Option(help: "Serve the status page and metrics on HOST:PORT.")
    public var metrics: String?
    @Flag(name: .shortAndLong, help: "Log every association and stream.")
    public var verbose = false
    @Option(help: "How long SIGTERM lets running connections finish (seconds, or '30s', '1m'; default 10s).")
    public var shutdownTimeout: String?
    @Option(help: "Bytes buffered for one association's streams at most, e.g. '64MiB' (the default).")
    public var bufferedBytesPerAssociation: String?
    @Option(help: "UDP segmentation offload, 'true' (the default) or 'false' (to capture one datagram per packet).")
    public var segmentationOffload: String?
    @Option(help: "Each path's congestion controller: 'bbr' (the default: paced, short queues) or 'reno' (loss-based).")
    public var congestionControl: String?
    @Option(help: "Forget a UDP flow after this long without a datagram either way (default 60s).")
    public var udpIdleTimeout: String?
    @Option(help: "How long a UDP datagram may take across the association before it is dropped (default 300ms).")
    public var udpLifetime: String?

    public init() {}

    /// Records the flags given in `overrides`, by config key.
    public func add(to overrides: inout ConfigOverrides) {
        overrides.set("metrics", metrics)
        overrides.set("verbose", verbose)
        overrides.set("shutdown-timeout", shutdownTimeout)
        overrides.set("limits.buffered-bytes-per-association", bufferedBytesPerAssociation)
        overrides.set("segmentation-offload", segmentationOffload)
        overrides.set("congestion-control", congestionControl)
        overrides.set("udp-idle-timeout", udpIdleTimeout)
        overrides.set("udp-lifetime", udpLifetime)
    }
}
