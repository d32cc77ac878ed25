import AggConfig
import AggProtocol
import Foundation
import Testing

@testable import Proxy

/// `aggserver keygen NAME --append FILE`: the server's key file gains the client's line, safely.
@Suite struct KeygenAppendTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("agg-keys-\(UUID())").path
    }

    @Test func appendingCreatesAMode600FileThenAddsLines() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let laptop = try KeyFile.parse(ServiceSetup.makeKeyLine(name: "laptop"), path: "t")[0]
        let phone = try KeyFile.parse(ServiceSetup.makeKeyLine(name: "phone"), path: "t")[0]
        try KeyFile.append(laptop, to: path, line: ServiceSetup.makeKeyLine(name: "laptop"))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        try KeyFile.append(phone, to: path, line: "phone " + phone.key.map { String(format: "%02x", $0) }.joined())
        // A file without a trailing newline still gets one line per key.
        let keys = try KeyFile.load(path: path)
        #expect(keys.map(\.name) == ["laptop", "phone"])
        #expect(keys[1].key == phone.key)
    }

    @Test func aNameAlreadyThereOrAnUnsafeFileIsRefusedAndNothingWritten() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let line = ServiceSetup.makeKeyLine(name: "laptop")
        let key = try KeyFile.parse(line, path: "t")[0]
        try KeyFile.append(key, to: path, line: line)
        let before = try String(contentsOfFile: path, encoding: .utf8)
        #expect(throws: ConfigError.self) { try KeyFile.append(key, to: path, line: line) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == before)
        chmod(path, 0o644)
        let other = try KeyFile.parse(ServiceSetup.makeKeyLine(name: "phone"), path: "t")[0]
        #expect(throws: ConfigError.self) { try KeyFile.append(other, to: path, line: "x") }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == before)
    }

    @Test func keyIDsAreStableSixteenHexDigitsAndDifferPerKey() throws {
        let a = try KeyFile.parse(ServiceSetup.makeKeyLine(name: "a"), path: "t")[0]
        let b = try KeyFile.parse(ServiceSetup.makeKeyLine(name: "b"), path: "t")[0]
        #expect(a.keyIDText.count == 16 && a.keyIDText.allSatisfy(\.isHexDigit))
        #expect(a.keyIDText == PreSharedKey(name: "renamed", key: a.key).keyIDText)
        #expect(a.keyIDText != b.keyIDText)
    }
}
