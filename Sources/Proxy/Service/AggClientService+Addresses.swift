import AggProtocol
import AggTransport
import Logging
import NIOCore
import SCTPEngine

/// Paths named by an interface follow its address (an LTE reconnect, a new DHCP lease): a new address gets a new
/// socket bound to it and to the interface, joins the association with ASCONF, and the old address is deleted
/// (a wildcard Delete IP, which works behind a NAT); a path whose address is gone is deleted. When no path has an
/// address left the association is aborted and set up again, with backoff, from the first path to get one.
extension AggClientService {
    /// Binds nothing yet: records the paths' current addresses and starts watching the named interfaces.
    func followAddresses() {
        eventLoop.preconditionInEventLoop()
        // The preferred group's driver bound the paths that have an address, in order; the others wait for their
        // interface.
        let first = boundGroups[0]
        var bound = first.driver.localAddresses.makeIterator()
        first.pathLocals = configuration.paths.map { $0.address == nil ? nil : bound.next() }
        var interfaces: [Int: String] = [:]
        for (index, path) in configuration.paths.enumerated() {
            if let interface = path.interface { interfaces[index] = interface }
        }
        var initial: [Int: SCTPIPAddress?] = [:]
        for index in interfaces.keys { initial[index] = first.pathLocals[index]?.ip }
        let watcher = PathAddressWatcher(interfaces: interfaces, initial: initial) { [unowned self] path, old, new in
            pathAddressChanged(path, from: old, to: new)
        }
        addressWatcher = watcher
        watcher.start(on: eventLoop)
    }

    /// The interface of path `path` now has `new` (nil: no address) instead of `old`: every group's driver
    /// follows.
    func pathAddressChanged(_ path: Int, from old: SCTPIPAddress?, to new: SCTPIPAddress?) {
        eventLoop.preconditionInEventLoop()
        if link.isStopped { return }
        let interface = path < configuration.paths.count ? configuration.paths[path].interface : nil
        logger.info(
            "path address changed",
            metadata: [
                "path": "\(path)", "interface": "\(interface ?? "-")", "from": "\(old?.description ?? "none")",
                "to": "\(new?.description ?? "none")",
            ])
        for group in boundGroups { pathAddressChanged(path, to: new, interface: interface, group: group) }
    }

    private func pathAddressChanged(_ path: Int, to new: SCTPIPAddress?, interface: String?, group: GroupDriver) {
        let driver = group.driver
        let previous = group.pathLocals[path]
        group.pathLocals[path] = nil
        if let previous {
            group.retiringLocals.append(previous)
            group.lostLocals[path] = previous
        }
        let association = linkAssociation(on: group)
        guard let new else {
            switch association?.phase {
            case "ready":
                guard let previous, let id = association?.id else { break }
                do {
                    try driver.removeLocalAddress(previous, on: id)
                } catch {
                    logger.info("path address not in the association", metadata: ["local": "\(previous)"])
                }
            case .some:
                // The handshake from that address cannot finish; the next attempt starts from a path that has one.
                if path == group.connectedPath, let id = association?.id {
                    driver.abort(id, reason: "local address gone")
                }
            case .none:
                break
            }
            if group.pathLocals.allSatisfy({ $0 == nil }), association?.phase == "ready", let id = association?.id {
                // No address left to send from: the association cannot be kept up over ASCONF (which needs an
                // address to send from); it is set up again, with backoff, once a path has an address.
                logger.warning("every path lost its address; the association is set up again once one has one")
                driver.abort(id, reason: "no local address left")
            }
            retireUnusedLocals(group)
            return
        }
        driver.openLocalAddress(SCTPSocketAddress(ip: new, port: 0), interface: interface).whenComplete { result in
            switch result {
            case .success(let bound):
                // With no other path to delete it over, the old address is still in the association: replace it.
                self.pathAddressBound(
                    path, bound, replacing: group.lostLocals.removeValue(forKey: path), group: group)
            case .failure(let error):
                self.logger.warning(
                    "cannot bind the path's new address", metadata: ["local": "\(new)", "error": "\(error)"])
            }
        }
    }

    private func pathAddressBound(
        _ path: Int, _ bound: SCTPSocketAddress, replacing previous: SCTPSocketAddress?, group: GroupDriver
    ) {
        let driver = group.driver
        if link.isStopped {
            driver.retireSocket(bound: bound)
            return
        }
        group.pathLocals[path] = bound
        let association = linkAssociation(on: group)
        switch association?.phase {
        case "ready":
            guard let id = association?.id else { break }
            applyPathPolicies(on: id, group: group)
            let toward = path < group.servers.count ? group.servers[path] : nil
            do {
                if let previous {
                    try driver.replaceLocalAddress(previous, with: bound, toward: toward, on: id)
                } else {
                    try driver.addLocalAddress(bound, toward: toward, on: id)
                }
                logger.info("path moves to its new address", metadata: ["path": "\(path)", "local": "\(bound)"])
                requestPeerPathPolicies(on: id, group: group, path: path)
            } catch {
                logger.warning("cannot move the path", metadata: ["local": "\(bound)", "error": "\(error)"])
            }
        case .some:
            // A handshake from the address that went away cannot finish: start again from the new one. One from
            // another path goes on, and this path joins once it is authenticated.
            if path == group.connectedPath, let id = association?.id {
                driver.abort(id, reason: "local address changed")
                reconnectSoon()
            }
        case .none:
            reconnectSoon()
        }
        retireUnusedLocals(group)
    }

    /// Closes the sockets of replaced addresses once no path of the group's associations sends from them (until
    /// then a datagram from such an address must fail there rather than leave from another socket).
    func retireUnusedLocals(_ group: GroupDriver) {
        guard !group.retiringLocals.isEmpty else { return }
        var inUse: Set<SCTPSocketAddress> = []
        for id in group.links.keys {
            for path in group.driver.endpoint.paths(of: id) { if let local = path.local { inUse.insert(local) } }
        }
        group.retiringLocals.removeAll { local in
            guard !inUse.contains(local), !group.pathLocals.contains(local) else { return false }
            group.driver.retireSocket(bound: local)
            logger.debug("socket retired", metadata: ["local": "\(local)"])
            return true
        }
    }
}
