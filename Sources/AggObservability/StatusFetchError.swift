/// Reading the daemon's status endpoint failed: where, and why.
public struct StatusFetchError: Error, CustomStringConvertible, Sendable {
    public var url: String
    public var reason: String

    public var description: String { "\(url): \(reason)" }
}
