import NIOCore

/// What a daemon needs besides its settings to live under systemd: the sockets it inherited and how long a stop
/// may wait for running streams.
public struct DaemonOptions: Sendable {
    /// Sockets systemd passed (`SocketActivation.listenFDs()`, read in `main` before any thread exists).
    public var listenFDs: [SocketActivation.ListenFD] = []
    /// How long SIGTERM waits for running streams before the association is shut down anyway.
    public var shutdownTimeout: TimeAmount = .seconds(10)
    /// How often the systemd status line is refreshed.
    public var statusInterval: TimeAmount = .seconds(5)

    public init() {}
}
