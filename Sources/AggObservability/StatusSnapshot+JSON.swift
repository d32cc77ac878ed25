#if canImport(FoundationEssentials)
    internal import FoundationEssentials
#else
    internal import Foundation
#endif

/// The JSON form of a snapshot, as `/status.json` serves it and `aggclient status` reads it.
extension StatusSnapshot {
    /// The snapshot as UTF-8 JSON, keys sorted so the output is stable.
    public func jsonBytes(pretty: Bool = false) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return Array(try encoder.encode(self))
    }

    /// Parses what `jsonBytes()` wrote; throws `StatusDecodingError` saying what did not fit.
    public init(json bytes: some Sequence<UInt8>) throws(StatusDecodingError) {
        do {
            self = try JSONDecoder().decode(StatusSnapshot.self, from: Data(bytes))
        } catch {
            throw StatusDecodingError(detail: "\(error)")
        }
    }
}
