/// Per-path policy: backup paths that carry data only while no active-mode path is reachable (the lowest priority
/// number first), and send-rate caps with a token bucket per path. The rules are kept by selector and applied to
/// every matching path, including paths added later. None of this runs while every path has the default policy
/// (`hasPathPolicies` false): the datapath then takes exactly the branches it took before policies existed.
extension Association {
    /// Stores a rule (the default policy removes it) and applies the rules at once; returns how many paths it
    /// covers now. Data in flight on a path that changes mode stays there and is acknowledged or retransmitted
    /// as usual, so a change never loses anything.
    @discardableResult
    func setPathPolicy(_ policy: SCTPPathPolicy, for selector: SCTPPathSelector, now: SCTPTime) -> Int {
        pathPolicies[selector] = policy == .default ? nil : policy
        applyPathPolicies()
        logger.debug("path policy", metadata: ["paths": "\(selector)", "policy": "\(policy)"])
        if hasPathPolicies { refreshPathRoles(now: now) }
        return paths.reduce(0) { $0 + (selector.matches($1) ? 1 : 0) }
    }

    /// The peer asked, with agg's Path Policy ASCONF parameter, to be sent to under `policy` on `path`. Kept by
    /// the path's id, so it follows a NAT rebinding of the path; our own rules (`setPathPolicy`) come first.
    func setPeerPathPolicy(_ policy: SCTPPathPolicy, path: PathID, now: SCTPTime) {
        peerPathPolicies[path] = policy == .default ? nil : policy
        applyPathPolicies()
        if let heldBack = logLimits.peerPathPolicy.admit(now: now) {
            logger.info(
                "peer path policy",
                metadata: [
                    "path": "\(paths[path].remoteAddress)", "policy": "\(policy)", "held_back": "\(heldBack)",
                ])
        }
        if hasPathPolicies { refreshPathRoles(now: now) }
    }

    /// Gives every path the policy its rules say (a rule for its remote address beats one for its local address,
    /// which beats what the peer asked for), after a rule changed or a path was added or changed address
    /// (`rebuildPathLookups`).
    func applyPathPolicies() {
        for i in paths.indices {
            let rule =
                pathPolicies[.remote(paths[i].remoteAddress)]
                ?? paths[i].localAddress.flatMap { pathPolicies[.local($0.ip)] } ?? peerPathPolicies[paths[i].id]
            paths[i].setPolicy(rule ?? .default)
        }
        hasPathPolicies = paths.contains { $0.policy != .default }
        if !hasPathPolicies {
            for i in paths.indices { paths[i].isStandby = false }
            if !isPaced { timers.disarm(.sendRate) }
        }
    }

    /// Before choosing paths: refills the buckets and decides which backups stand by. While an active-mode path is
    /// reachable every backup does; otherwise the reachable backups with the lowest priority number carry data.
    func refreshPathRoles(now: SCTPTime) {
        var activeReachable = false
        var bestBackup = Int.max
        for i in paths.indices {
            paths[i].refillRateBucket(now: now)
            guard paths[i].isActive else { continue }
            switch paths[i].policy.mode {
            case .active: activeReachable = true
            case .backup: bestBackup = min(bestBackup, paths[i].policy.priority)
            }
        }
        for i in paths.indices {
            let policy = paths[i].policy
            let standby = policy.mode == .backup && (activeReachable || policy.priority != bestBackup)
            if standby != paths[i].isStandby {
                paths[i].isStandby = standby
                if let heldBack = logLimits.pathRole.admit(now: now) {
                    logger.info(
                        standby ? "backup path stands by" : "backup path carries data",
                        metadata: ["path": "\(paths[i].remoteAddress)", "held_back": "\(heldBack)"])
                }
            }
        }
    }

    /// The send path under the policies: the primary if it carries data, else the first path that does; nil when
    /// none does (the caller falls back to RFC 9260's choice).
    var policySendPathID: PathID? {
        if paths.primary.carriesData { return paths.primaryID }
        return paths.firstID { $0.carriesData }
    }

    /// How often a potentially-failed or inactive path is probed: once per RTO (RFC 7829 §5.1), but while a backup
    /// carries the data in its place an active-mode path is probed at least every max(RTO.Initial, 2 × SRTT), so
    /// that traffic leaves the backup (often metered) within about a second of the path's recovery rather than
    /// after an RTO backed off to a minute.
    func failedPathProbeInterval(_ path: borrowing Path) -> SCTPDuration {
        let rto = path.rto.rto
        guard hasPathPolicies, path.policy.mode == .active,
            paths.contains(where: { $0.carriesData && $0.policy.mode == .backup })
        else { return rto }
        let floor = max(configuration.rtoInitial, (path.rto.srtt ?? .zero) * 2)
        return min(rto, floor)
    }

    /// After sending: while data waits and a capped or paced path that should carry it has an empty bucket, wake
    /// up when the bucket holds two packets again (a paced path: its send quantum) (the next deadline includes the refill time). The pacer of BBR
    /// shares this timer with the caps: a path waits for whichever of its buckets fills last.
    func armSendRateTimer(now: SCTPTime) {
        var wake: SCTPTime?
        if !sendQueue.isEmpty || outstanding.hasChunksToRetransmit {
            for path in paths where path.carriesData && !path.hasSendAllowance {
                var due = now
                if let bucket = path.rateBucket { due = max(due, bucket.time(toHold: 2 * path.mtu, after: now)) }
                if let pacer = path.pacer {
                    let quantum = SendRateBucket.sendQuantum(
                        bytesPerSecond: Double(pacer.bytesPerSecond), mtu: path.mtu)
                    due = max(due, pacer.time(toHold: quantum, after: now))
                }
                wake = min(wake ?? due, due)
            }
        }
        if let wake {
            timers.arm(.sendRate, at: max(wake, now + .microseconds(100)))
        } else {
            timers.disarm(.sendRate)
        }
    }
}
