import Foundation
import Testing

/// The targets depend one way (STYLE.md, "Modules"; issue 13): the engine and the proxy's sans-IO protocol at the
/// bottom, then the transport, egress, ingress, settings, observability, the services, the daemons and tools on
/// top. SwiftPM lets a file import a module its target does not declare as long as it is built anyway, so the
/// imports themselves are checked here, and the two sans-IO targets are checked for reading the clock or the
/// system's randomness.
@Suite struct LayeringTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The project's own modules, lowest first; each may import only those before it (and AggOperations, which
    /// imports none of them, from AggConfig on).
    static let layers = [
        "SCTPEngine", "AggProtocol", "AggTransport", "AggEgress", "AggIngress", "AggConfig", "AggObservability",
        "Proxy", "DaemonCommandLine",
    ]

    /// The lines of every Swift file below `folder`, by file name; at least one file, or the folder was not found.
    static func swiftFiles(in folder: String) throws -> [(name: String, lines: [Substring])] {
        var found: [(name: String, lines: [Substring])] = []
        let files = FileManager.default.enumerator(
            at: sources.appendingPathComponent(folder), includingPropertiesForKeys: nil)
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift" else { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            found.append((file.lastPathComponent, text.split(separator: "\n", omittingEmptySubsequences: false)))
        }
        #expect(!found.isEmpty, "no Swift file in \(folder)")
        return found
    }

    /// Checks that no file below `folder` imports one of the project's modules outside `allowed` (the toolchain's
    /// and the C targets' modules are not looked at).
    static func expectImports(of folder: String, within allowed: Set<String>) throws {
        let known = Set(layers + ["AggOperations", "SCTPSimulation", "ProxyFuzzSupport"])
        for file in try swiftFiles(in: folder) {
            for line in file.lines {
                let words = line.split(separator: " ")
                guard let index = words.firstIndex(of: "import"), index + 1 < words.count,
                    words[..<index].allSatisfy({ $0.hasPrefix("@") || $0 == "package" || $0 == "public" })
                else { continue }
                let module = String(words[index + 1])
                #expect(
                    !known.contains(module) || allowed.contains(module),
                    "\(folder)/\(file.name) imports \(module) from above its layer")
            }
        }
    }

    @Test(arguments: layers.indices)
    func eachLayerImportsOnlyTheLayersBelowIt(_ index: Int) throws {
        let below = Set(Self.layers[..<index])
        let operations: Set<String> = index >= Self.layers.firstIndex(of: "AggConfig")! ? ["AggOperations"] : []
        try Self.expectImports(of: "Sources/\(Self.layers[index])", within: below.union(operations))
    }

    @Test func operationsImportsNoneOfTheProxy() throws {
        try Self.expectImports(of: "Sources/AggOperations", within: [])
    }

    /// sctpcat runs the engine over the transport, nothing of the proxy; the fuzz support wraps the protocol and
    /// the status endpoint, nothing of the services, so the fuzzers and tests that use it do not pull them in; the
    /// fuzzers (the Fuzz package) use the layers they fuzz and that support, not the services.
    @Test func toolsUseOnlyTheLayersTheyNeed() throws {
        try Self.expectImports(of: "Sources/sctpcat", within: ["SCTPEngine", "AggTransport", "AggOperations"])
        try Self.expectImports(
            of: "Tests/ProxyFuzzSupport", within: ["SCTPEngine", "AggProtocol", "AggObservability"])
        try Self.expectImports(
            of: "Fuzz/Sources", within: ["SCTPEngine", "AggProtocol", "AggIngress", "ProxyFuzzSupport"])
    }

    /// The engine and the proxy's protocol take time and randomness from their caller: no clock, no system RNG,
    /// no sockets or event loops.
    @Test(arguments: ["Sources/SCTPEngine", "Sources/AggProtocol"])
    func sansIOTargetsReadNoClockAndDoNoIO(_ folder: String) throws {
        let forbidden = [
            "import NIOPosix", "import NIOEmbedded", "import Dispatch", "import NIOHTTP1", "Date()", ".now()",
            "ContinuousClock", "SuspendingClock", "SystemRandomNumberGenerator", "DispatchQueue", "EventLoop",
        ]
        for file in try Self.swiftFiles(in: folder) {
            for (number, line) in file.lines.enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                for word in forbidden where code.contains(word) {
                    Issue.record("\(folder)/\(file.name):\(number + 1) uses \(word)")
                }
            }
        }
    }
}
