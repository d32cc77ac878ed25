import AggObservability
import NIOCore

/// The status endpoint's request pipeline (NIO's HTTP/1.1 server handlers and `StatusRequestHandler`) with a
/// fixed stand-in for the daemon's figures, so the StatusFuzzer (in the Fuzz package) can feed it any bytes
/// on an `EmbeddedChannel`. Not used by the daemons.
public enum StatusRequestFuzzTarget {
    /// Installs the pipeline on `channel` (on its event loop) with a request timeout of `requestTimeout`; returns
    /// a counter of the requests the handler refused.
    public static func configure(_ channel: any Channel, requestTimeout: TimeAmount) throws -> () -> Int {
        let responder = FixedStatusResponder(eventLoop: channel.eventLoop)
        try StatusRequestHandler.configure(channel, responder: responder, requestTimeout: requestTimeout)
        return { responder.refused }
    }

    /// The most bytes one request's answer may take (the status page is the largest), for the fuzzer's bound.
    public static var largestAnswer: Int { StatusPage.html.count + 1024 }
}

/// Answers from fixed figures: a one-line exposition, an empty snapshot, two status lines. Confined to its loop.
final class FixedStatusResponder: StatusResponder, @unchecked Sendable {
    let eventLoop: any EventLoop
    private(set) var refused = 0

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func prometheusText() -> String { "# TYPE agg_fuzz counter\nagg_fuzz 1\n" }

    func snapshotJSON(historySeconds: Int?) throws -> [UInt8] {
        var snapshot = StatusSnapshot(role: "fuzz", uptime: 1)
        snapshot.history = Array(
            repeating: StatusSnapshot.Sample(uptime: 1, paths: []), count: min(max(historySeconds ?? 3, 0), 3))
        return try snapshot.jsonBytes()
    }

    func statusLines() -> [String] { ["association 1 streams=0", "udp datagrams_sent=0"] }

    func recordRefusedRequest() { refused += 1 }
}
