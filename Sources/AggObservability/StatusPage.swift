/// The live status page served at `/` to browsers, `Resources/status.html`: one self-contained HTML document (no
/// external assets, so it works offline) whose script fetches `/status.json` from the same origin every second and draws, per path, the
/// throughput each way, the RTT, the congestion window and the share of traffic over the last minutes on canvases.
/// Everything that comes from the daemon reaches the page through `textContent` or canvas text, never as markup.
/// After each refresh the script records how many points it plotted per path (`data-path-points` on the path's
/// row, `data-points` on each chart) and how many of the path's samples carried traffic (`data-path-busy-points`),
/// so a headless browser test can check the graphs have data.
///
/// The page is a real file, built into the binary with SwiftPM's `embedInCode` resource rule (Package.swift): the
/// build turns it into a byte array (`PackageResources.status_html`), so the daemon stays one file with no resource
/// bundle beside it, and needs no Foundation `Bundle` to find it at run time.
package enum StatusPage {
    /// The document's UTF-8 bytes.
    package static var html: [UInt8] { PackageResources.status_html }
}
