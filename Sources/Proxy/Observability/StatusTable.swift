/// Renders a snapshot as the terminal table of `aggclient status`: a summary line per association, then one row
/// per path with its state, RTT, throughput up (toward the server) and down, retransmission rate and share of the
/// traffic, and the totals. Plain text; the caller adds the screen control codes.
public enum StatusTable {
    static let columns: [(title: String, width: Int, leftAligned: Bool)] = [
        ("PATH", 34, true), ("STATE", 18, true), ("RTT", 8, false), ("UP", 12, false), ("DOWN", 12, false),
        ("LOSS", 7, false), ("SHARE", 7, false),
    ]
    /// Cells of the share bar after the SHARE column.
    static let barWidth = 12

    /// The table for `snapshot`, lines separated by "\n" and ending with one.
    public static func render(_ snapshot: StatusSnapshot) -> String {
        var lines: [String] = []
        let c = snapshot.counters
        lines.append(
            "\(snapshot.role)  up \(StatusFormat.duration(snapshot.uptime))  "
                + "connections \(c.connections.values.reduce(0, +)) (\(c.connections["success"] ?? 0) ok)  "
                + "relayed up \(StatusFormat.bytes(c.bytesUp)), down \(StatusFormat.bytes(c.bytesDown))")
        if snapshot.associations.isEmpty {
            lines.append("")
            lines.append(snapshot.role == "aggclient" ? "no association: reconnecting" : "no client connected")
        }
        for association in snapshot.associations {
            lines.append("")
            lines.append(
                "association \(association.id) \(association.state), \(association.streams) streams, "
                    + "\(StatusFormat.bytes(association.bufferedBytes)) buffered")
            lines.append(row(columns.map(\.title), bar: ""))
            var up = 0.0
            var down = 0.0
            for path in association.paths {
                let (pathUp, pathDown) = directions(path, role: snapshot.role)
                up += pathUp
                down += pathDown
                lines.append(
                    row(
                        [
                            "\(path.local) → \(path.remote):\(path.remotePort)", path.state,
                            StatusFormat.milliseconds(path.srttMilliseconds), StatusFormat.rate(bytesPerSecond: pathUp),
                            StatusFormat.rate(bytesPerSecond: pathDown), StatusFormat.percent(path.lossRate),
                            StatusFormat.percent(path.share),
                        ], bar: shareBar(path.share)))
            }
            lines.append(
                row(
                    [
                        "total", "", "", StatusFormat.rate(bytesPerSecond: up), StatusFormat.rate(bytesPerSecond: down),
                        "", "",
                    ], bar: ""))
        }
        return lines.map { trimTrailingSpaces($0) }.joined(separator: "\n") + "\n"
    }

    /// A path's throughput toward the server and toward the client: the client sends up, the server down.
    static func directions(_ path: StatusSnapshot.Path, role: String) -> (up: Double, down: Double) {
        role == "aggserver" ? (path.receiveRate, path.sendRate) : (path.sendRate, path.receiveRate)
    }

    /// `fraction` of the bar's cells filled.
    static func shareBar(_ fraction: Double) -> String {
        let filled = Int((min(max(fraction, 0), 1) * Double(barWidth)).rounded())
        return String(repeating: "█", count: filled) + String(repeating: "·", count: barWidth - filled)
    }

    private static func row(_ cells: [String], bar: String) -> String {
        var line = ""
        for (cell, column) in zip(cells, columns) {
            let text = cell.count > column.width ? String(cell.prefix(column.width - 1)) + "…" : cell
            let padding = String(repeating: " ", count: column.width - text.count)
            line += column.leftAligned ? text + padding : padding + text
            line += " "
        }
        return line + bar
    }

    private static func trimTrailingSpaces(_ line: String) -> String {
        var line = Substring(line)
        while line.last == " " { line = line.dropLast() }
        return String(line)
    }
}
