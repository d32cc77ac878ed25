import SCTPEngine
import Testing

@testable import AggTransport

/// The steering program's decisions, run by a classic BPF interpreter that follows the kernel's rules for the
/// instructions it uses (an out-of-bounds load ends the program with 0).
@Suite struct ReusePortSteeringTests {
    /// Runs `program` over `packet` (the UDP payload) as Linux's cBPF would.
    static func run(_ program: [ReusePortSteering.Instruction], on packet: [UInt8]) -> UInt32 {
        var accumulator: UInt32 = 0
        var pc = 0
        var steps = 0
        while pc < program.count {
            steps += 1
            precondition(steps < 1000, "the program loops")
            let instruction = program[pc]
            let k = Int(instruction.k)
            pc += 1
            switch instruction.code {
            case ReusePortSteering.loadLength:
                accumulator = UInt32(packet.count)
            case ReusePortSteering.loadByteAbsolute:
                guard k < packet.count else { return 0 }
                accumulator = UInt32(packet[k])
            case ReusePortSteering.loadWordAbsolute:
                guard k + 4 <= packet.count else { return 0 }
                accumulator = packet[k..<k + 4].reduce(0) { $0 << 8 | UInt32($1) }
            case ReusePortSteering.jumpIfEqual:
                pc += Int(accumulator == instruction.k ? instruction.jt : instruction.jf)
            case ReusePortSteering.jumpIfGreaterOrEqual:
                pc += Int(accumulator >= instruction.k ? instruction.jt : instruction.jf)
            case ReusePortSteering.moduloConstant:
                accumulator %= instruction.k
            case ReusePortSteering.returnAccumulator:
                return accumulator
            case ReusePortSteering.returnConstant:
                return instruction.k
            default:
                Issue.record("unknown opcode \(instruction.code)")
                return 0
            }
        }
        Issue.record("the program ran off its end")
        return 0
    }

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }

    static func data(session: UInt64, size: Int = 120) -> [UInt8] {
        [0x44] + bigEndian(session) + Array(repeating: 0xA5, count: size - 9)
    }

    /// A compact (version 4) data datagram: type 0x64, the 4-byte session id, the truncated counter, the rest.
    /// The packed (version 5) layout shares it under type 0x65.
    static func compactData(session: UInt32, size: Int = 120, type: UInt8 = 0x64) -> [UInt8] {
        [type] + bigEndian(UInt64(session)).suffix(4) + [0xFF, 0xFF, 0xFF, 0xFE]
            + Array(repeating: 0xA5, count: size - 9)
    }

    static func hello(key: UInt64, version: UInt8 = 3) -> [UInt8] {
        [0x41, version] + bigEndian(key) + Array(repeating: 0x5A, count: 96)
    }

    /// An SCTP common header (ports 9899 -> 9899) with `tag`, then a chunk.
    static func sctp(tag: UInt32) -> [UInt8] {
        [0x26, 0xAB, 0x26, 0xAB] + bigEndian(UInt64(tag)).suffix(4) + [0, 0, 0, 0] + [1, 0, 0, 20]
            + Array(repeating: 0, count: 16)
    }

    @Test func dataIsSteeredBySessionIDToTheShardThatMadeIt() {
        for shards in 1...5 {
            let program = ReusePortSteering.program(shards: shards, allowPlaintext: false)
            for index in 0..<shards {
                let shard = SCTPShard(count: UInt32(shards), index: UInt32(index))
                for random: UInt64 in [0x0123_4567_89AB_CDEF, 0xFFFF_FFFF_FFFF_FFFF, 42, 0xDEAD_BEEF_0000_0001] {
                    let session =
                        random & 0xFFFF_FFFF_0000_0000 | UInt64(shard.steer(UInt32(truncatingIfNeeded: random)))
                    #expect(Self.run(program, on: Self.data(session: session)) == UInt32(index))
                }
            }
        }
    }

    /// Version 4's session ids are the shard's low word alone, at bytes 1..<5 of a compact (or packed) datagram;
    /// version 3's full-layout datagrams keep theirs at bytes 5..<9. All reach the shard that made the session,
    /// with or without plaintext allowed.
    @Test func compactDataIsSteeredByItsFourByteSessionIDToTheShardThatMadeIt() {
        for plaintext in [false, true] {
            for shards in 1...5 {
                let program = ReusePortSteering.program(shards: shards, allowPlaintext: plaintext)
                for index in 0..<shards {
                    let shard = SCTPShard(count: UInt32(shards), index: UInt32(index))
                    for random: UInt32 in [0x89AB_CDEF, 0xFFFF_FFFF, 42, 0x0000_0001, 0xDEAD_BEEF] {
                        let session = shard.steer(random)
                        #expect(Self.run(program, on: Self.compactData(session: session)) == UInt32(index))
                        let packed = Self.compactData(session: session, type: 0x65)
                        #expect(Self.run(program, on: packed) == UInt32(index))
                        // The same id in version 3's layout, high word random.
                        let full = UInt64(random) << 32 | UInt64(session)
                        #expect(Self.run(program, on: Self.data(session: full)) == UInt32(index))
                    }
                }
            }
        }
        let program = ReusePortSteering.program(shards: 2, allowPlaintext: false)
        #expect(Self.run(program, on: [0x64, 0, 0, 0, 1]) == ReusePortSteering.fallToHash, "too short: not shard 0")
        #expect(Self.run(program, on: [0x65, 0, 0, 0, 1]) == ReusePortSteering.fallToHash, "too short: not shard 0")
    }

    @Test func helloIsSteeredByKeyIDWhateverItsVersion() {
        let program = ReusePortSteering.program(shards: 3, allowPlaintext: false)
        for key: UInt64 in [1, 2, 3, 0x1111_2222_3333_4444, .max] {
            let expected = UInt32(truncatingIfNeeded: key) % 3
            #expect(Self.run(program, on: Self.hello(key: key)) == expected)
            #expect(Self.run(program, on: Self.hello(key: key, version: 4)) == expected)
            #expect(Self.run(program, on: Self.hello(key: key, version: 9)) == expected)
        }
    }

    @Test func everythingElseFallsToTheKernelsHash() {
        let program = ReusePortSteering.program(shards: 2, allowPlaintext: false)
        let hash = ReusePortSteering.fallToHash
        #expect(Self.run(program, on: []) == hash)
        #expect(Self.run(program, on: [0x44]) == hash, "too short to hold a session id: not shard 0")
        #expect(Self.run(program, on: Array(Self.data(session: 1).prefix(11))) == hash)
        #expect(Self.run(program, on: [0x42] + Array(repeating: 1, count: 90)) == hash, "HELLO-ACK")
        #expect(Self.run(program, on: Self.sctp(tag: 7)) == hash, "plaintext when it is not allowed")
    }

    @Test func plaintextIsSteeredByTagAndInitFallsToTheHash() {
        let program = ReusePortSteering.program(shards: 4, allowPlaintext: true)
        for tag: UInt32 in [1, 2, 3, 4, 0xFFFF_FFFF, 0x8000_0001] {
            #expect(Self.run(program, on: Self.sctp(tag: tag)) == tag % 4)
        }
        #expect(Self.run(program, on: Self.sctp(tag: 0)) == ReusePortSteering.fallToHash, "INIT")
        #expect(Self.run(program, on: Array(Self.sctp(tag: 5).prefix(11))) == ReusePortSteering.fallToHash)
        // Encrypted datagrams keep their rules with plaintext allowed.
        #expect(Self.run(program, on: Self.data(session: 0x77)) == 0x77 % 4)
        #expect(Self.run(program, on: Self.hello(key: 0x66)) == 0x66 % 4)
    }

    @Test func theProgramFitsTheKernelsLimits() {
        for plaintext in [false, true] {
            let program = ReusePortSteering.program(shards: 64, allowPlaintext: plaintext)
            #expect(program.count <= 4096)  // BPF_MAXINSNS
            // Every jump lands inside the program (the kernel's checker refuses anything else).
            for (pc, instruction) in program.enumerated() where instruction.code & 0x07 == 0x05 {
                #expect(pc + 1 + Int(max(instruction.jt, instruction.jf)) < program.count)
            }
            #expect(MemoryLayout<ReusePortSteering.Instruction>.size == 8)  // struct sock_filter
        }
    }
}
