import Foundation
import NIOCore
import SCTPEngine
import SCTPSimulation

/// Shared helpers of the interop tests: loading captures from the test bundle and naming chunk types.
enum Interop {
    /// The path of a file in `Tests/SCTPEngineTests/Resources`, as copied into the test bundle.
    static func resourcePath(_ name: String, extension fileExtension: String) throws -> String {
        guard
            let url = Bundle.module.url(forResource: name, withExtension: fileExtension, subdirectory: "Resources")
        else { throw InteropError.missingResource("\(name).\(fileExtension)") }
        return url.path
    }

    /// The UDP datagrams of a capture in the resources.
    static func capture(_ name: String) throws -> PcapReader {
        try PcapReader(path: try resourcePath(name, extension: "pcap"))
    }

    /// The RFC names of chunk types, for messages and the BENCHMARKS/interop notes.
    static func chunkName(_ type: UInt8) -> String {
        switch type {
        case 0: return "DATA"
        case 1: return "INIT"
        case 2: return "INIT-ACK"
        case 3: return "SACK"
        case 4: return "HEARTBEAT"
        case 5: return "HEARTBEAT-ACK"
        case 6: return "ABORT"
        case 7: return "SHUTDOWN"
        case 8: return "SHUTDOWN-ACK"
        case 9: return "ERROR"
        case 10: return "COOKIE-ECHO"
        case 11: return "COOKIE-ACK"
        case 12: return "ECNE"
        case 13: return "CWR"
        case 14: return "SHUTDOWN-COMPLETE"
        case 15: return "AUTH"
        case 16: return "NR-SACK"
        case 64: return "I-DATA"
        case 128: return "ASCONF-ACK"
        case 130: return "RE-CONFIG"
        case 132: return "PAD"
        case 192: return "FORWARD-TSN"
        case 193: return "ASCONF"
        case 194: return "I-FORWARD-TSN"
        default: return "type \(type)"
        }
    }

    static func hex(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}

/// What an interop test could not set up.
enum InteropError: Error, CustomStringConvertible {
    case missingResource(String)
    case toolMissing(String)
    case toolFailed(command: String, status: Int32, output: String)

    var description: String {
        switch self {
        case .missingResource(let name): return "test resource \(name) is not in the bundle"
        case .toolMissing(let message): return message
        case .toolFailed(let command, let status, let output): return "\(command) exited with \(status):\n\(output)"
        }
    }
}
