import LibsodiumReference
import SintraCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Differential check of SintraCrypto's ristretto255 against libsodium: random and edge-case inputs go through
// both, and every result must agree byte for byte. Usage: differential [--cases N] [--seed S]. Exits 1 on any
// mismatch, 2 when libsodium cannot be loaded or the arguments are wrong.

/// SplitMix64: a small seeded generator, so that a failing run is replayed exactly from the printed seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xbf58_476d_1ce4_e5b9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94d0_49bb_1331_11eb
        return mixed ^ (mixed >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

/// Counts cases and mismatches per property and keeps the first few mismatches for the report.
struct Tally {
    struct Row {
        var name: String
        var cases = 0
        var mismatches = 0
    }

    static let reportedMismatchesMax = 10

    var rows: [Row] = []
    var reported: [String] = []
    /// Encodings with bit 255 set that libsodium accepted and Sintra (rightly) rejected.
    var topBitAcceptedBySodium = 0

    mutating func record(_ name: String, agree: Bool, _ detail: @autoclosure () -> String) {
        if rows.last?.name != name {
            rows.append(Row(name: name))
        }
        rows[rows.count - 1].cases += 1
        if !agree {
            rows[rows.count - 1].mismatches += 1
            if reported.count < Tally.reportedMismatchesMax {
                reported.append("\(name): \(detail())")
            }
        }
    }

    var mismatches: Int { rows.reduce(0) { $0 + $1.mismatches } }
}

func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }

/// ℓ − 1 and other scalars at the edges of the range, as canonical 32-byte strings.
func edgeScalars() -> [[UInt8]] {
    let orderMinusOne = try! Hex.decode("ecd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
    let orderMinusTwo = try! Hex.decode("ebd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
    let twoTo252 = [UInt8](repeating: 0, count: 31) + [0x10]
    let small: [[UInt8]] = (0...4).map { value in [UInt8(value)] + [UInt8](repeating: 0, count: 31) }
    return small + [orderMinusOne, orderMinusTwo, twoTo252]
}

/// Field values around p = 2^255 − 19 and with the top bit set: every one is a non-canonical encoding.
func nonCanonicalEncodings() -> [[UInt8]] {
    var encodings: [[UInt8]] = []
    for offset in 0..<19 {
        // p + offset for offset < 19 stays below 2^255 and is ≥ p.
        var bytes = [UInt8](repeating: 0xff, count: 32)
        bytes[0] = 0xed &+ UInt8(offset)
        bytes[31] = 0x7f
        encodings.append(bytes)
    }
    for value in 0..<8 {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes[0] = UInt8(value * 2)
        bytes[31] = 0x80
        encodings.append(bytes)
    }
    return encodings
}

func runChecks(sodium: Libsodium, cases: Int, generator: inout SeededGenerator) -> Tally {
    var tally = Tally()
    let scalars = checkScalars(sodium: sodium, cases: cases, tally: &tally, generator: &generator)
    // Points from libsodium's own derivation, so that Sintra's decoder is fed encodings it did not produce.
    let points = (0..<cases).map { _ in sodium.call(sodium.fromHash, generator.bytes(64)).bytes }
    checkGroupOperations(sodium: sodium, scalars: scalars, points: points, tally: &tally, generator: &generator)
    let identity = [UInt8](repeating: 0, count: 32)
    checkDecoding(sodium: sodium, points: [identity, GroupElement.generator.encoded] + points, tally: &tally,
        generator: &generator)
    checkMultiscalar(sodium: sodium, points: points, cases: cases, tally: &tally, generator: &generator)
    return tally
}

/// Reduction of 64 bytes, then the arithmetic on reduced and edge-case scalars. Returns the scalars used, for
/// the group checks.
func checkScalars(sodium: Libsodium, cases: Int, tally: inout Tally, generator: inout SeededGenerator) -> [[UInt8]] {
    let wideEdges: [[UInt8]] = [
        [UInt8](repeating: 0, count: 64), [UInt8](repeating: 0xff, count: 64),
        [UInt8](repeating: 0xff, count: 32) + [UInt8](repeating: 0, count: 32),
    ]
    for wide in wideEdges + (0..<cases).map({ _ in generator.bytes(64) }) {
        let expected = sodium.call(sodium.scalarReduce, wide)
        let actual = Scalar(reducing64: wide).bytes
        let detail = "\(hex(wide)) → \(hex(actual)), libsodium \(hex(expected))"
        tally.record("scalar reduce (64 bytes)", agree: actual == expected, detail)
    }
    var scalars = edgeScalars()
    scalars += (0..<cases).map { _ in sodium.call(sodium.scalarReduce, generator.bytes(64)) }
    let parsed = scalars.map { try! Scalar(canonicalBytes: $0) }
    let binaryOperations: [(String, (Scalar, Scalar) -> Scalar, Libsodium.ScalarBinaryFunction)] = [
        ("scalar add", { $0 + $1 }, sodium.scalarAdd),
        ("scalar subtract", { $0 - $1 }, sodium.scalarSubtract),
        ("scalar multiply", { $0 * $1 }, sodium.scalarMultiplyScalars),
    ]
    for (name, operation, function) in binaryOperations {
        for index in scalars.indices {
            // Pairs every scalar with another one, edge cases included, without a quadratic number of cases.
            let other = (index * 7 + 3) % scalars.count
            let expected = sodium.call(function, scalars[index], scalars[other])
            let actual = operation(parsed[index], parsed[other]).bytes
            tally.record(name, agree: actual == expected, "\(hex(scalars[index])), \(hex(scalars[other]))")
        }
    }
    for index in scalars.indices {
        let expected = sodium.call(sodium.scalarNegate, scalars[index])
        tally.record("scalar negate", agree: (-parsed[index]).bytes == expected, hex(scalars[index]))
    }
    for index in scalars.indices {
        // libsodium refuses to invert zero (status −1); Sintra maps zero to zero.
        let expected = sodium.call(sodium.scalarInvert, scalars[index])
        let actual = parsed[index].inverted().bytes
        let agree = expected.status == 0 ? actual == expected.bytes : parsed[index].isZero && actual == scalars[index]
        tally.record("scalar invert", agree: agree, hex(scalars[index]))
    }
    return scalars
}

/// Scalar multiplication, addition, element derivation and hashing to the group.
func checkGroupOperations(
    sodium: Libsodium, scalars: [[UInt8]], points: [[UInt8]], tally: inout Tally, generator: inout SeededGenerator
) {
    let parsed = scalars.map { try! Scalar(canonicalBytes: $0) }
    let identity = [UInt8](repeating: 0, count: 32)
    let generatorEncoding = GroupElement.generator.encoded

    for (index, scalar) in scalars.enumerated() {
        let expected = sodium.call(sodium.scalarMultiplyBase, scalar)
        let actual = GroupElement.generatorMultiple(parsed[index]).encoded
        // libsodium reports an identity result with status −1 and writes the identity's encoding.
        let statusAgrees = (expected.status == 0) == (actual != identity)
        tally.record("fixed-base scalar multiplication", agree: actual == expected.bytes && statusAgrees, hex(scalar))
    }
    for (index, scalar) in scalars.enumerated() {
        let point = index == 0 ? generatorEncoding : points[index % points.count]
        let expected = sodium.call(sodium.scalarMultiply, scalar, point)
        let element = try! GroupElement(encoded: point)
        let actual = (parsed[index] * element).encoded
        let statusAgrees = (expected.status == 0) == (actual != identity)
        tally.record(
            "variable-base scalar multiplication", agree: actual == expected.bytes && statusAgrees,
            "\(hex(scalar)) · \(hex(point))")
    }
    let additionInputs = [identity, generatorEncoding] + points
    for index in additionInputs.indices {
        let (a, b) = (additionInputs[index], additionInputs[(index * 5 + 1) % additionInputs.count])
        let expected = sodium.call(sodium.add, a, b)
        let sum = try! GroupElement(encoded: a) + GroupElement(encoded: b)
        let agree = expected.status == 0 && sum.encoded == expected.bytes
        tally.record("point addition", agree: agree, "\(hex(a)) + \(hex(b))")
    }
    for uniform in [[UInt8](repeating: 0, count: 64)] + points.indices.map({ _ in generator.bytes(64) }) {
        let expected = sodium.call(sodium.fromHash, uniform)
        let actual = GroupElement(uniformBytes: uniform).encoded
        tally.record("from uniform bytes", agree: expected.status == 0 && actual == expected.bytes, hex(uniform))
    }
    for index in points.indices {
        let message = generator.bytes(index % 97)
        let domain = Array("sintra-differential-\(index % 5)".utf8)
        let expected = sodium.hashToGroup(message, domain: domain)
        let actual = HashToGroup.element(message, domain: domain).encoded
        tally.record("hash to group (RFC 9380)", agree: actual == expected, "\(hex(message)) in \(hex(domain))")
    }
}

/// Decoding must accept exactly the encodings libsodium accepts, and re-encoding must give the same bytes.
///
/// One known exception: libsodium before 1.0.19 ignores bit 255 in `ristretto255_is_canonical`, so it accepts
/// an encoding with the top bit set as the element of the same bytes with that bit cleared. RFC 9496 §4.3.1
/// rejects such an encoding (as an integer it is ≥ p), and so does Sintra; for those inputs the check is that
/// Sintra rejects, and the count of inputs that the installed libsodium accepted is reported.
func checkDecoding(sodium: Libsodium, points: [[UInt8]], tally: inout Tally, generator: inout SeededGenerator) {
    func agreement(_ encoding: [UInt8]) -> Bool {
        let decoded = try? GroupElement(encoded: encoding)
        if encoding[31] & 0x80 != 0 {
            if sodium.isValid(encoding) {
                tally.topBitAcceptedBySodium += 1
            }
            return decoded == nil
        }
        guard let decoded else { return !sodium.isValid(encoding) }
        return sodium.isValid(encoding) && decoded.encoded == encoding
    }
    for encoding in points {
        let agree = agreement(encoding)
        tally.record("decode and re-encode (valid)", agree: agree, hex(encoding))
    }
    for encoding in points {
        // Flipping one bit of a valid encoding gives mostly invalid ones, and some valid ones.
        var mutated = encoding
        let bit = Int(generator.next() % 256)
        mutated[bit / 8] ^= 1 << UInt8(bit % 8)
        let agree = agreement(mutated)
        tally.record("decode (one bit flipped)", agree: agree, hex(mutated))
    }
    for encoding in nonCanonicalEncodings() + points.indices.map({ _ in generator.bytes(32) }) {
        let agree = agreement(encoding)
        tally.record("decode (random and non-canonical bytes)", agree: agree, hex(encoding))
    }
}

/// The variable-time multi-scalar multiplication against a sum of libsodium's single multiplications.
func checkMultiscalar(
    sodium: Libsodium, points: [[UInt8]], cases: Int, tally: inout Tally, generator: inout SeededGenerator
) {
    let elements = points.map { try! GroupElement(encoded: $0) }
    for index in 0..<max(1, cases / 10) {
        let count = 1 + index % 33
        var scalars: [Scalar] = []
        var selected: [Int] = []
        var expected = [UInt8](repeating: 0, count: 32)
        for _ in 0..<count {
            let scalar = sodium.call(sodium.scalarReduce, generator.bytes(64))
            let pointIndex = Int(generator.next() % UInt64(points.count))
            scalars.append(try! Scalar(canonicalBytes: scalar))
            selected.append(pointIndex)
            let product = sodium.call(sodium.scalarMultiply, scalar, points[pointIndex]).bytes
            expected = sodium.call(sodium.add, expected, product).bytes
        }
        let actual = GroupElement.multiscalarVariableTime(scalars, selected.map { elements[$0] }).encoded
        tally.record("multi-scalar multiplication (1–33 points)", agree: actual == expected, "\(count) points")
    }
}

func main() -> Int32 {
    var cases = 2000
    var seed = UInt64.random(in: 0...UInt64.max)
    var arguments = CommandLine.arguments.dropFirst()
    while let argument = arguments.popFirst() {
        switch argument {
        case "--cases":
            guard let value = arguments.popFirst().flatMap({ Int($0) }), value > 0 else { return 2 }
            cases = value
        case "--seed":
            guard let value = arguments.popFirst().flatMap({ UInt64($0) }) else { return 2 }
            seed = value
        default:
            print("usage: differential [--cases N] [--seed S]")
            return 2
        }
    }
    let sodium: Libsodium
    do {
        sodium = try Libsodium()
    } catch {
        print("differential: \(error)")
        return 2
    }
    print("Sintra ristretto255 against libsodium \(sodium.version) (\(sodium.path)), \(cases) cases, seed \(seed)")
    var generator = SeededGenerator(state: seed)
    let tally = runChecks(sodium: sodium, cases: cases, generator: &generator)
    let nameWidth = tally.rows.map(\.name.count).max() ?? 0
    for row in tally.rows {
        let name = row.name.rightPadded(to: nameWidth)
        let cases = String(row.cases).leftPadded(to: 6)
        print("\(name)  \(cases) cases  \(String(row.mismatches).leftPadded(to: 4)) mismatches")
    }
    if tally.topBitAcceptedBySodium > 0 {
        print("note: libsodium \(sodium.version) accepted \(tally.topBitAcceptedBySodium) encodings with bit 255 set "
            + "that RFC 9496 rejects; Sintra rejected them (counted as agreement)")
    }
    for line in tally.reported {
        print("MISMATCH \(line)")
    }
    let total = tally.rows.reduce(0) { $0 + $1.cases }
    print("\(total - tally.mismatches) passed, \(tally.mismatches) failed")
    return tally.mismatches == 0 ? 0 : 1
}

extension String {
    func rightPadded(to width: Int) -> String {
        self + String(repeating: " ", count: max(0, width - count))
    }

    func leftPadded(to width: Int) -> String {
        String(repeating: " ", count: max(0, width - count)) + self
    }
}

exit(main())
