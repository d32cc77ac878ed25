import NIOCore
import SCTPEngine

/// Follows the address of every interface named with `--path`: once a second, on the service's event loop, it
/// reads the interfaces' addresses and reports each path whose address changed, appeared or went away.
///
/// Polling, rather than a netlink route socket subscribed to RTMGRP_IPV4_IFADDR/RTMGRP_IPV6_IFADDR: NIO has no
/// channel for AF_NETLINK sockets, so a subscription would need its own thread or a hand-made selectable; a
/// netlink socket that overflows (ENOBUFS) loses events and has to dump everything again anyway; and an LTE
/// reconnect takes seconds, so learning of it within one second costs nothing that matters. One getifaddrs(3)
/// a second is one small netlink dump, well under a millisecond of the event loop's time.
package final class PathAddressWatcher {
    /// The interface of each watched path, by path index.
    package let interfaces: [Int: String]
    /// The address each watched path was last seen with (nil: none).
    package private(set) var addresses: [Int: SCTPIPAddress?]
    private let snapshot: () -> InterfaceAddresses
    private let onChange: (_ path: Int, _ old: SCTPIPAddress?, _ new: SCTPIPAddress?) -> Void
    private var task: Scheduled<Void>?
    private var isRunning = false

    /// `initial` is what the paths were bound to; `snapshot` reads the interfaces (a fake in tests).
    package init(
        interfaces: [Int: String], initial: [Int: SCTPIPAddress?],
        snapshot: @escaping () -> InterfaceAddresses = InterfaceAddresses.current,
        onChange: @escaping (_ path: Int, _ old: SCTPIPAddress?, _ new: SCTPIPAddress?) -> Void
    ) {
        self.interfaces = interfaces
        self.addresses = initial
        self.snapshot = snapshot
        self.onChange = onChange
    }

    /// Polls every `interval` on `eventLoop` until `stop()`.
    package func start(on eventLoop: any EventLoop, interval: TimeAmount = .seconds(1)) {
        guard !interfaces.isEmpty, !isRunning else { return }
        isRunning = true
        scheduleNextPoll(on: eventLoop, in: interval)
    }

    package func stop() {
        isRunning = false
        task?.cancel()
        task = nil
    }

    private func scheduleNextPoll(on eventLoop: any EventLoop, in interval: TimeAmount) {
        task = eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            guard isRunning else { return }
            poll()
            if isRunning { scheduleNextPoll(on: eventLoop, in: interval) }
        }
    }

    /// Reads the interfaces once and reports every path whose address differs from the last one seen. A path
    /// keeps its address while the interface still has it, even if another address now comes first.
    package func poll() {
        let now = snapshot()
        for (path, interface) in interfaces.sorted(by: { $0.key < $1.key }) {
            let old = addresses[path] ?? nil
            if let old, now.byInterface[interface]?.contains(old) == true { continue }
            let new = now.pathAddress(of: interface)
            guard new != old else { continue }
            addresses[path] = new
            onChange(path, old, new)
        }
    }
}
