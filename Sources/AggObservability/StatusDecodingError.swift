/// The daemon's answer was not a status snapshot.
public struct StatusDecodingError: Error, CustomStringConvertible, Sendable {
    public var detail: String

    public var description: String { "not a status snapshot: \(detail)" }
}
