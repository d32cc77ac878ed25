/// What a stream session counts, through the daemon's metrics (`ProxyMetrics` conforms): the session stays free of
/// the metrics backend.
package protocol StreamSessionMetrics: AnyObject {
    /// A defence or a resource limit refused `count` requests for `reason`.
    func recordRefusal(_ reason: Refusal, count: Int)
    /// A proxied connection's open ended with `outcome`.
    func recordConnection(_ outcome: ConnectionOutcome)
    /// Stream payload relayed toward the server (`up`) or toward the client.
    func recordRelayed(_ bytes: Int, up: Bool)
    /// A new connection found every stream in use and waits for one.
    func recordStreamWait()
}

extension StreamSessionMetrics {
    /// A defence or a resource limit refused one request for `reason`.
    package func recordRefusal(_ reason: Refusal) { recordRefusal(reason, count: 1) }
}
