import NIOCore
import SCTPEngine
import Testing

@testable import AggTransport

/// Which address a path named by an interface uses, and how the watcher reports an interface's address changing.
@Suite struct PathAddressWatcherTests {
    static let v4a = SCTPIPAddress(v4: 10, 0, 2, 2)
    static let v4b = SCTPIPAddress(v4: 10, 0, 2, 3)
    static let linkLocal = SCTPIPAddress("fe80::1")!
    static let uniqueLocal = SCTPIPAddress("fd00::1")!
    static let global = SCTPIPAddress("2001:db8::5")!

    @Test func pathAddressPrefersIPv4ThenAGlobalIPv6() {
        let snapshot = InterfaceAddresses(byInterface: [
            "both": [Self.linkLocal, Self.global, Self.v4a],
            "v6": [Self.linkLocal, Self.uniqueLocal, Self.global],
            "local-only": [Self.linkLocal, Self.uniqueLocal],
        ])
        #expect(snapshot.pathAddress(of: "both") == Self.v4a)
        #expect(snapshot.pathAddress(of: "v6") == Self.global)
        #expect(snapshot.pathAddress(of: "local-only") == nil)
        #expect(snapshot.pathAddress(of: "missing") == nil)
    }

    @Test func interfaceNamesAreCheckedBeforeSO_BINDTODEVICE() {
        #expect(InterfaceAddresses.isValidName("wwan0"))
        #expect(InterfaceAddresses.isValidName("enp0s31f6.100"))
        #expect(!InterfaceAddresses.isValidName(""))
        #expect(!InterfaceAddresses.isValidName("sixteen-chars-xx"))
        #expect(!InterfaceAddresses.isValidName("a b"))
        #expect(!InterfaceAddresses.isValidName("../x"))
    }

    @Test func theRealHostHasALoopbackAddress() {
        #expect(InterfaceAddresses.current().byInterface["lo"]?.contains(SCTPIPAddress(v4: 127, 0, 0, 1)) == true)
    }

    /// A change, a loss and a return are each reported once; a second address on the interface does not move a
    /// path whose address is still there; a path named by an address is not watched.
    @Test func reportsEachChangeOnce() {
        var current = InterfaceAddresses(byInterface: ["wwan0": [Self.v4a], "eth0": [SCTPIPAddress(v4: 192, 0, 2, 9)]])
        var reports: [String] = []
        let watcher = PathAddressWatcher(
            interfaces: [1: "wwan0"], initial: [1: Self.v4a], snapshot: { current },
            onChange: { path, old, new in
                reports.append("\(path) \(old?.description ?? "none") -> \(new?.description ?? "none")")
            })
        watcher.poll()
        #expect(reports.isEmpty)
        current.byInterface["wwan0"] = [Self.v4b, Self.v4a]
        watcher.poll()
        #expect(reports.isEmpty)
        current.byInterface["wwan0"] = [Self.v4b]
        watcher.poll()
        watcher.poll()
        #expect(reports == ["1 10.0.2.2 -> 10.0.2.3"])
        current.byInterface["wwan0"] = nil
        watcher.poll()
        current.byInterface["wwan0"] = [Self.v4a]
        watcher.poll()
        watcher.poll()
        #expect(reports == ["1 10.0.2.2 -> 10.0.2.3", "1 10.0.2.3 -> none", "1 none -> 10.0.2.2"])
        #expect(watcher.addresses[1] == Self.v4a)
    }
}
