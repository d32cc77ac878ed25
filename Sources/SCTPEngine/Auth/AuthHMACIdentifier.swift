import Crypto

/// The HMAC algorithms of RFC 4895 §3.3 that an AUTH chunk may name, and the MAC each computes.
public enum AuthHMACIdentifier: UInt16, Sendable, Hashable, CaseIterable {
    /// RFC 4895 §3.3: "SHA-1 ... MUST be supported and included in the HMAC-ALGO parameter."
    case sha1 = 1
    case sha256 = 3

    /// Bytes of the MAC the AUTH chunk carries.
    public var digestLength: Int {
        switch self {
        case .sha1: return 20
        case .sha256: return 32
        }
    }

    /// The MAC of `bytes` under `key`.
    func authenticationCode(for bytes: [UInt8], key: [UInt8]) -> [UInt8] {
        let symmetric = SymmetricKey(data: key)
        return bytes.withUnsafeBytes { raw in
            switch self {
            case .sha1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: raw, using: symmetric))
            case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: raw, using: symmetric))
            }
        }
    }

    /// Checks a received MAC in constant time.
    func isValid(_ mac: [UInt8], for bytes: [UInt8], key: [UInt8]) -> Bool {
        guard mac.count == digestLength else { return false }
        let symmetric = SymmetricKey(data: key)
        return mac.withUnsafeBytes { code in
            bytes.withUnsafeBytes { raw in
                switch self {
                case .sha1: return HMAC<Insecure.SHA1>.isValidAuthenticationCode(code, authenticating: raw, using: symmetric)
                case .sha256: return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: raw, using: symmetric)
                }
            }
        }
    }
}
