/// An association's paths, in the order they were added, each named by its `PathID`, and which one is primary.
/// Whatever refers to a path beyond one call (the primary, the path DATA last came on, timers, per-path maps) holds
/// its id, never its position: removing a path changes no reference but those to itself. A position (`Int`) is for
/// one loop or one lookup inside a function. An association has a handful of paths
/// (`SCTPConfiguration.maxPathsPerAssociation`), so an id is found by scanning a compact array of ids, which at that
/// size costs less than hashing it.
struct PathTable: RandomAccessCollection, Sendable {
    private var paths: [Path] = []
    /// `paths`' ids in the same order, scanned by `position(of:)` without striding over whole paths.
    private var ids: [PathID] = []
    /// The primary path (RFC 9260 §6.4): where data and control chunks go while it is usable. The first path added
    /// is primary; when the primary is removed, the first remaining path takes its place.
    private(set) var primaryID = PathID(0)

    init() {}

    var startIndex: Int { 0 }
    var endIndex: Int { paths.count }

    /// The path at a position, for one loop or lookup; read and changed in place (a copy of a path retains
    /// everything it holds). Its id never changes: a path is replaced whole only by `replace(_:)`.
    subscript(position: Int) -> Path {
        _read { yield paths[position] }
        _modify {
            yield &paths[position]
            assert(paths[position].id == ids[position], "a path's id changed in place")
        }
    }

    /// The path with `id`, which must be in the table.
    subscript(id: PathID) -> Path {
        _read { yield paths[position(of: id)!] }
        _modify {
            let p = position(of: id)!
            yield &paths[p]
            assert(paths[p].id == id, "a path's id changed in place")
        }
    }

    /// Where the path with `id` is now; nil when it is not (or no longer) in the table.
    func position(of id: PathID) -> Int? {
        var position = 0
        while position < ids.count {
            if ids[position] == id { return position }
            position += 1
        }
        return nil
    }

    func contains(_ id: PathID) -> Bool { position(of: id) != nil }

    /// The id of the first path that satisfies `predicate`, in table order.
    func firstID(where predicate: (Path) -> Bool) -> PathID? {
        for position in paths.indices where predicate(paths[position]) { return ids[position] }
        return nil
    }

    /// The ids of the paths that satisfy `predicate`, in table order.
    func ids(where predicate: (Path) -> Bool) -> [PathID] {
        paths.indices.compactMap { predicate(paths[$0]) ? ids[$0] : nil }
    }

    // MARK: - Primary

    /// The primary path; the table must not be empty.
    var primary: Path {
        _read { yield paths[position(of: primaryID)!] }
        _modify {
            let p = position(of: primaryID)!
            yield &paths[p]
        }
    }

    /// Makes the path with `id`, which must be in the table, the primary.
    mutating func makePrimary(_ id: PathID) {
        precondition(contains(id), "no path \(id)")
        primaryID = id
    }

    // MARK: - Adding and removing

    /// Adds a path with an id not in the table; the first path added becomes the primary.
    mutating func append(_ path: Path) {
        precondition(!contains(path.id), "two paths with id \(path.id)")
        if paths.isEmpty { primaryID = path.id }
        paths.append(path)
        ids.append(path.id)
    }

    /// Puts `path` in the place of the path with its id, which must be in the table.
    mutating func replace(_ path: Path) {
        paths[position(of: path.id)!] = path
    }

    /// Removes the path with `id` and returns it; nil when there is none. The others keep their order, and if it
    /// was the primary the first remaining path becomes primary.
    @discardableResult
    mutating func remove(_ id: PathID) -> Path? {
        guard let p = position(of: id) else { return nil }
        ids.remove(at: p)
        let removed = paths.remove(at: p)
        if id == primaryID, let first = ids.first { primaryID = first }
        return removed
    }
}
