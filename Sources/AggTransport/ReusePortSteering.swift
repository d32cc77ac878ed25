/// The classic BPF program aggserver attaches to each listen address's SO_REUSEPORT group
/// (SO_ATTACH_REUSEPORT_CBPF), which picks the shard (the group's socket index) for every datagram so that all of
/// one client's datagrams reach the event loop that holds its state:
///
/// - DATA (0x44, version 3's full layout): by the session id's low 32 bits (bytes 5..<9), modulo the shard count.
///   The shard that made a session chose an id congruent to its index (`ServerDatagramSecurity.Configuration.shard`),
///   so a session stays on its shard whatever address or port its datagrams come from (paths, NAT rebinding).
/// - Compact and packed DATA (0x64, version 4 on; 0x65, version 5 on): by the 4-byte session id (bytes 1..<5), which
///   is that same low word alone.
/// - HELLO (0x41): by the key id's low 32 bits (bytes 6..<10): every handshake of one key, hence every session and
///   association of that key, lives on one shard, so per-key limits, the HELLO replay memory and the UDP key budget
///   stay exact without sharing state between shards.
/// - With plaintext allowed, RFC 6951 SCTP: by the verification tag (bytes 4..<8), which the server's shard chose
///   congruent to its index (`SCTPConfiguration.shard`). An INIT (tag 0) falls to the kernel's hash, and the shard it
///   lands on picks the tag that brings the rest back.
/// - Anything else (short datagrams, other types, tag 0): an index out of range, for which Linux falls back to its
///   own hash of the addresses and ports (`reuseport_select_sock`, net/core/sock_reuseport.c; checked on this
///   project's 6.18 kernel by `ShardedServerTests`).
///
/// The program sees the UDP payload from offset 0. A load beyond the datagram would end the program with 0 (the
/// first shard), so the length is checked first.
package enum ReusePortSteering {
    /// One instruction, laid out as Linux's `struct sock_filter`.
    package struct Instruction: Equatable, Sendable {
        var code: UInt16
        var jt: UInt8
        var jf: UInt8
        var k: UInt32
    }

    /// What a program returns to let the kernel hash the datagram: any index at or past the group's size.
    static let fallToHash: UInt32 = 0xFFFF_FFFF
    /// The shortest datagram the program steers: every rule reads within the first 12 bytes (an SCTP common header).
    static let minimumLength: UInt32 = 12
    /// First bytes of the datagram layer's messages (docs/PROTOCOL.md, "Handshake" and "Data").
    static let dataType: UInt32 = 0x44
    static let compactDataType: UInt32 = 0x64
    static let packedDataType: UInt32 = 0x65
    static let helloType: UInt32 = 0x41

    // Opcodes of classic BPF (linux/bpf_common.h, linux/filter.h).
    static let loadWordAbsolute: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
    static let loadByteAbsolute: UInt16 = 0x30  // BPF_LD | BPF_B | BPF_ABS
    static let loadLength: UInt16 = 0x80  // BPF_LD | BPF_W | BPF_LEN
    static let jumpIfEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
    static let jumpIfGreaterOrEqual: UInt16 = 0x35  // BPF_JMP | BPF_JGE | BPF_K
    static let moduloConstant: UInt16 = 0x94  // BPF_ALU | BPF_MOD | BPF_K
    static let returnAccumulator: UInt16 = 0x16  // BPF_RET | BPF_A
    static let returnConstant: UInt16 = 0x06  // BPF_RET | BPF_K

    /// The program for `shards` shards (at least 1), steering plaintext SCTP by tag when `allowPlaintext`.
    ///
    /// With plaintext allowed, an SCTP packet whose source port's high byte is 0x41, 0x44, 0x64 or 0x65 (ports
    /// 16640-16895, 17408-17663 and 25600-26111) reads as a HELLO or DATA and may land on the wrong shard; its
    /// association then fails. agg's own client sends from SCTP port 9899.
    package static func program(shards: Int, allowPlaintext: Bool) -> [Instruction] {
        precondition(shards >= 1)
        let count = UInt32(shards)
        func op(_ code: UInt16, _ k: UInt32 = 0, jt: UInt8 = 0, jf: UInt8 = 0) -> Instruction {
            Instruction(code: code, jt: jt, jf: jf, k: k)
        }
        // Jump offsets count the instructions skipped after the jump.
        var program: [Instruction] = [
            op(loadLength),
            op(jumpIfGreaterOrEqual, minimumLength, jt: 0, jf: allowPlaintext ? 18 : 14),  // short: fall to hash
            op(loadByteAbsolute, 0),
            op(jumpIfEqual, dataType, jt: 3, jf: 0),
            op(jumpIfEqual, compactDataType, jt: 5, jf: 0),
            op(jumpIfEqual, packedDataType, jt: 4, jf: 0),
            op(jumpIfEqual, helloType, jt: 6, jf: 9),
            // DATA: the session id's low word.
            op(loadWordAbsolute, 5),
            op(moduloConstant, count),
            op(returnAccumulator),
            // Compact and packed DATA: the session id.
            op(loadWordAbsolute, 1),
            op(moduloConstant, count),
            op(returnAccumulator),
            // HELLO: the key id's low word.
            op(loadWordAbsolute, 6),
            op(moduloConstant, count),
            op(returnAccumulator),
        ]
        if allowPlaintext {
            program += [
                // SCTP: the verification tag; 0 (an INIT) falls to the hash.
                op(loadWordAbsolute, 4),
                op(jumpIfEqual, 0, jt: 2, jf: 0),
                op(moduloConstant, count),
                op(returnAccumulator),
            ]
        }
        program.append(op(returnConstant, fallToHash))
        return program
    }
}
