import AggProtocol

/// Renders a snapshot as the terminal table of `aggclient status`: a summary line per association, then one row
/// per path with its name, state, RTT, throughput up (toward the server) and down, retransmission rate, share of the
/// traffic and bytes since the daemon started, and the totals. Every line fits an 80-column terminal. Plain text;
/// the caller adds the screen control codes.
public enum StatusTable {
    static let columns: [(title: String, width: Int, leftAligned: Bool)] = [
        ("PATH", 15, true), ("STATE", 11, true), ("RTT", 7, false), ("UP", 9, false), ("DOWN", 9, false),
        ("LOSS", 5, false), ("SHARE", 6, false), ("BYTES", 10, false),
    ]
    /// The widest line: one less than the terminal, so a full line never wraps on terminals that wrap at the
    /// last column.
    static let maxWidth = 79

    /// The table for `snapshot`, lines separated by "\n" and ending with one.
    /// A line once connections found every stream in use: how many waited and how many were refused.
    static func streamPressure(_ counters: StatusSnapshot.Counters) -> String? {
        let refused = counters.connections[ConnectionOutcome.tooManyStreams.rawValue] ?? 0
        guard counters.streamWaits > 0 || refused > 0 else { return nil }
        return "every stream in use: \(counters.streamWaits) connections waited, \(refused) refused"
    }

    /// With several server groups: which one is in use, and how often the client failed over and came back.
    static func serverGroups(_ groups: StatusSnapshot.ServerGroupCounters) -> String? {
        guard groups.count > 1 else { return nil }
        let tail = "  failovers \(groups.failovers), returns \(groups.returns)"
        guard let index = groups.inUse else { return "server none of \(groups.count) answers" + tail }
        let head = "server group \(index + 1) of \(groups.count)"
        // The address in what is left of 79 columns, cut with an ellipsis like the path table's names.
        var server = groups.server ?? "?"
        let room = 79 - head.count - tail.count - 3
        if server.count > room { server = String(server.prefix(max(room - 1, 1))) + "…" }
        return head + " (\(server))" + tail
    }

    public static func render(_ snapshot: StatusSnapshot) -> String {
        var lines: [String] = []
        let c = snapshot.counters
        lines.append(
            "\(snapshot.role) \(snapshot.version)  up \(StatusFormat.duration(snapshot.uptime))  "
                + "connections \(c.connections.values.reduce(0, +)) (\(c.connections["success"] ?? 0) ok)  "
                + "relayed up \(StatusFormat.bytes(c.bytesUp)), down \(StatusFormat.bytes(c.bytesDown))")
        if let pressure = Self.streamPressure(c) { lines.append(pressure) }
        if let groups = c.serverGroups, let line = Self.serverGroups(groups) { lines.append(line) }
        if let udp = c.udp, udp.flows > 0 {
            lines.append(
                "udp \(udp.flows) flow\(udp.flows == 1 ? "" : "s")  datagrams up \(udp.datagramsUp) "
                    + "(\(StatusFormat.bytes(udp.bytesUp))), down \(udp.datagramsDown) "
                    + "(\(StatusFormat.bytes(udp.bytesDown)))  expired \(udp.expired)  dropped \(udp.dropped.values.reduce(0, +))"
            )
        }
        if snapshot.associations.isEmpty {
            lines.append("")
            lines.append(snapshot.role == "aggclient" ? "no association: reconnecting" : "no client connected")
        }
        for association in snapshot.associations {
            lines.append("")
            var streams = "\(association.streams) stream\(association.streams == 1 ? "" : "s")"
            if association.streamLimit > 0 { streams += " of \(association.streamLimit)" }
            lines.append(
                "association \(association.id) \(association.state)"
                    + (association.client.map { ", key \($0)" } ?? "")
                    + ", \(streams), \(StatusFormat.bytes(association.bufferedBytes)) buffered")
            lines.append(row(columns.map(\.title)))
            var up = 0.0
            var down = 0.0
            var bytes = 0
            let names = association.paths.map(\.name)
            for path in association.paths {
                let (pathUp, pathDown) = directions(path, role: snapshot.role)
                up += pathUp
                down += pathDown
                bytes += path.totalBytes
                // Two paths of one name (an uplink to both server addresses) are told apart by the remote.
                let name = names.filter { $0 == path.name }.count > 1 ? "\(path.name)→\(path.remote)" : path.name
                lines.append(
                    row([
                        name, stateName(path.state), StatusFormat.milliseconds(path.srttMilliseconds),
                        StatusFormat.shortRate(bytesPerSecond: pathUp),
                        StatusFormat.shortRate(bytesPerSecond: pathDown),
                        StatusFormat.percent(path.lossRate), StatusFormat.percent(path.share),
                        StatusFormat.bytes(path.totalBytes),
                    ]))
            }
            lines.append(
                row([
                    "total", "", "", StatusFormat.shortRate(bytesPerSecond: up),
                    StatusFormat.shortRate(bytesPerSecond: down), "", "", StatusFormat.bytes(bytes),
                ]))
            for path in association.paths { if let line = policyLine(path) { lines.append(line) } }
        }
        return lines.map { fit(trimTrailingSpaces($0)) }.joined(separator: "\n") + "\n"
    }

    /// "  lte: backup (standby), cap 20 Mbit/s, sent 1.2 MB, received 30.5 MB": a path's mode and cap and its
    /// bytes each way since the daemon started; nil for a daemon that does not report them.
    static func policyLine(_ path: StatusSnapshot.Path) -> String? {
        guard let mode = path.mode else { return nil }
        var text = "  \(path.name): \(mode)"
        if path.standby == true { text += " (standby)" }
        if let cap = path.rateLimitBitsPerSecond {
            text += ", cap \(StatusFormat.rate(bytesPerSecond: Double(cap) / 8))"
        }
        if let sent = path.totalBytesSent, let received = path.totalBytesReceived {
            text += ", sent \(StatusFormat.bytes(sent)), received \(StatusFormat.bytes(received))"
        }
        return text
    }

    /// A path's throughput toward the server and toward the client: the client sends up, the server down.
    static func directions(_ path: StatusSnapshot.Path, role: String) -> (up: Double, down: Double) {
        role == "aggserver" ? (path.receiveRate, path.sendRate) : (path.sendRate, path.receiveRate)
    }

    /// A path state as short as the STATE column: "potentially-failed" does not fit.
    static func stateName(_ state: String) -> String {
        state == "potentially-failed" ? "pot. failed" : state
    }

    private static func row(_ cells: [String]) -> String {
        var line = ""
        for (cell, column) in zip(cells, columns) {
            let text = cell.count > column.width ? String(cell.prefix(column.width - 1)) + "…" : cell
            let padding = String(repeating: " ", count: column.width - text.count)
            line += column.leftAligned ? text + padding : padding + text
            line += " "
        }
        return line
    }

    /// `line` cut to `maxWidth` characters, the last one an ellipsis when something was cut.
    private static func fit(_ line: String) -> String {
        line.count > maxWidth ? String(line.prefix(maxWidth - 1)) + "…" : line
    }

    private static func trimTrailingSpaces(_ line: String) -> String {
        var line = Substring(line)
        while line.last == " " { line = line.dropLast() }
        return String(line)
    }
}
