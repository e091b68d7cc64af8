import LibsodiumReference
import SintraCrypto

/// Random inputs shared by both sides: the same scalars, encodings and uniform strings go to Sintra and to
/// libsodium. Pools hold `poolSize` entries, used round robin, so that no operation sees one input only.
final class Fixture {
    static let poolSize = 64
    static let poolMask = poolSize - 1
    static let multiscalarSets = 8

    let sodium: Libsodium
    let scalarBytes: [[UInt8]]
    let scalars: [Scalar]
    let pointBytes: [[UInt8]]
    let points: [GroupElement]
    let uniformBytes: [[UInt8]]
    let messages: [[UInt8]]
    let domain = Array("sintra-benchmark-hash-to-group".utf8)

    // The same inputs as contiguous C buffers for libsodium, allocated once for the life of the process.
    let scalarBuffer: UnsafeMutablePointer<UInt8>
    let pointBuffer: UnsafeMutablePointer<UInt8>
    let uniformBuffer: UnsafeMutablePointer<UInt8>
    let outputBuffer: UnsafeMutablePointer<UInt8>
    let productBuffer: UnsafeMutablePointer<UInt8>

    init(sodium: Libsodium) {
        self.sodium = sodium
        scalarBytes = (0..<Fixture.poolSize).map { _ in sodium.randomScalar() }
        scalars = scalarBytes.map { try! Scalar(canonicalBytes: $0) }
        uniformBytes = (0..<Fixture.poolSize).map { _ in (0..<64).map { _ in UInt8.random(in: 0...255) } }
        pointBytes = (0..<Fixture.poolSize).map { _ in
            GroupElement.generatorMultiple(Scalar.random()).encoded
        }
        points = pointBytes.map { try! GroupElement(encoded: $0) }
        messages = (0..<Fixture.poolSize).map { _ in (0..<32).map { _ in UInt8.random(in: 0...255) } }

        func buffer(_ pool: [[UInt8]]) -> UnsafeMutablePointer<UInt8> {
            let flat = pool.flatMap { $0 }
            let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: flat.count)
            pointer.initialize(from: flat, count: flat.count)
            return pointer
        }
        scalarBuffer = buffer(scalarBytes)
        pointBuffer = buffer(pointBytes)
        uniformBuffer = buffer(uniformBytes)
        outputBuffer = buffer([[UInt8](repeating: 0, count: 32)])
        productBuffer = buffer([[UInt8](repeating: 0, count: 32)])
    }

    func scalarPointer(_ slot: Int) -> UnsafePointer<UInt8> { UnsafePointer(scalarBuffer + 32 * slot) }
    func pointPointer(_ slot: Int) -> UnsafePointer<UInt8> { UnsafePointer(pointBuffer + 32 * slot) }
    func uniformPointer(_ slot: Int) -> UnsafePointer<UInt8> { UnsafePointer(uniformBuffer + 64 * slot) }
}

/// ristretto255 rows. Rows marked "bytes → bytes" do exactly what the libsodium function does, including
/// decoding the inputs and encoding the result, because libsodium's API works on encodings only; rows marked
/// "element" time Sintra's arithmetic on decoded elements, which is what a protocol holding decoded keys pays.
func groupComparisons(_ fixture: Fixture) -> [Comparison] {
    let sodium = fixture.sodium
    let mask = Fixture.poolMask
    let output = fixture.outputBuffer
    return [
        Comparison(
            name: "variable-base scalar multiplication (bytes → bytes)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let slot = index & mask
                    let scalar = try! Scalar(canonicalBytes: fixture.scalarBytes[slot])
                    let element = try! GroupElement(encoded: fixture.pointBytes[slot])
                    consume((scalar * element).encoded)
                }
            },
            libsodium: { iterations in
                let multiply = sodium.scalarMultiply
                for index in 0..<iterations {
                    let slot = index & mask
                    _ = multiply(output, fixture.scalarPointer(slot), fixture.pointPointer(slot))
                    consume(output[0])
                }
            }),
        Comparison(
            name: "variable-base scalar multiplication (element)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let slot = index & mask
                    let product = fixture.scalars[slot] * fixture.points[slot]
                    consume(firstByte(of: product))
                }
            },
            libsodium: nil),
        Comparison(
            name: "fixed-base scalar multiplication (bytes → bytes)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let scalar = try! Scalar(canonicalBytes: fixture.scalarBytes[index & mask])
                    consume(GroupElement.generatorMultiple(scalar).encoded)
                }
            },
            libsodium: { iterations in
                let multiplyBase = sodium.scalarMultiplyBase
                for index in 0..<iterations {
                    _ = multiplyBase(output, fixture.scalarPointer(index & mask))
                    consume(output[0])
                }
            }),
        Comparison(
            name: "fixed-base scalar multiplication (element)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let product = GroupElement.generatorMultiple(fixture.scalars[index & mask])
                    consume(firstByte(of: product))
                }
            },
            libsodium: nil),
        Comparison(
            name: "decode",
            sintra: { iterations in
                for index in 0..<iterations {
                    let element = try? GroupElement(encoded: fixture.pointBytes[index & mask])
                    consume(element == nil ? 1 : 0)
                }
            },
            libsodium: { iterations in
                let isValid = sodium.isValidPoint
                for index in 0..<iterations {
                    consume(UInt8(truncatingIfNeeded: isValid(fixture.pointPointer(index & mask))))
                }
            }),
        Comparison(
            // libsodium exposes no encoding of its own; its cost is inside every row that returns bytes.
            name: "encode",
            sintra: { iterations in
                for index in 0..<iterations {
                    consume(fixture.points[index & mask].encoded)
                }
            },
            libsodium: nil),
        Comparison(
            name: "addition (bytes → bytes: 2 decodes, add, encode)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let first = try! GroupElement(encoded: fixture.pointBytes[index & mask])
                    let second = try! GroupElement(encoded: fixture.pointBytes[(index + 1) & mask])
                    consume((first + second).encoded)
                }
            },
            libsodium: { iterations in
                let add = sodium.add
                for index in 0..<iterations {
                    _ = add(output, fixture.pointPointer(index & mask), fixture.pointPointer((index + 1) & mask))
                    consume(output[0])
                }
            }),
        Comparison(
            name: "from uniform bytes (RFC 9496 derivation, encoded)",
            sintra: { iterations in
                for index in 0..<iterations {
                    consume(GroupElement(uniformBytes: fixture.uniformBytes[index & mask]).encoded)
                }
            },
            libsodium: { iterations in
                let fromHash = sodium.fromHash
                for index in 0..<iterations {
                    _ = fromHash(output, fixture.uniformPointer(index & mask))
                    consume(output[0])
                }
            }),
        Comparison(
            name: "hash to group (RFC 9380 SHA-512, encoded)",
            sintra: { iterations in
                for index in 0..<iterations {
                    consume(HashToGroup.element(fixture.messages[index & mask], domain: fixture.domain).encoded)
                }
            },
            libsodium: { iterations in
                for index in 0..<iterations {
                    consume(sodium.hashToGroup(fixture.messages[index & mask], domain: fixture.domain))
                }
            }),
    ] + multiscalarComparisons(fixture, count: 2) + multiscalarComparisons(fixture, count: 32)
}

/// Verification-style Σ sᵢ·Pᵢ. libsodium has no multi-scalar multiplication, so its side is what a libsodium
/// user writes: one `crypto_scalarmult_ristretto255` per point and an addition per product.
func multiscalarComparisons(_ fixture: Fixture, count: Int) -> [Comparison] {
    let sodium = fixture.sodium
    let mask = Fixture.poolMask
    let output = fixture.outputBuffer
    let product = fixture.productBuffer
    let sets = Fixture.multiscalarSets
    let scalarSets = (0..<sets).map { set in (0..<count).map { fixture.scalars[(set * count + $0) & mask] } }
    let pointSets = (0..<sets).map { set in (0..<count).map { fixture.points[(set * count + $0) & mask] } }
    return [
        Comparison(
            name: "multi-scalar verification, \(count) points (bytes → bytes)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let first = index * count
                    var scalars: [Scalar] = []
                    var elements: [GroupElement] = []
                    scalars.reserveCapacity(count)
                    elements.reserveCapacity(count)
                    for offset in 0..<count {
                        scalars.append(try! Scalar(canonicalBytes: fixture.scalarBytes[(first + offset) & mask]))
                        elements.append(try! GroupElement(encoded: fixture.pointBytes[(first + offset + 1) & mask]))
                    }
                    consume(GroupElement.multiscalarVariableTime(scalars, elements).encoded)
                }
            },
            libsodium: { iterations in
                let multiply = sodium.scalarMultiply
                let add = sodium.add
                for index in 0..<iterations {
                    let first = index * count
                    _ = multiply(output, fixture.scalarPointer(first & mask), fixture.pointPointer((first + 1) & mask))
                    for offset in 1..<count {
                        let slot = (first + offset) & mask
                        _ = multiply(product, fixture.scalarPointer(slot), fixture.pointPointer((slot + 1) & mask))
                        _ = add(output, output, product)
                    }
                    consume(output[0])
                }
            }),
        Comparison(
            name: "multi-scalar verification, \(count) points (element)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let set = index % sets
                    let sum = GroupElement.multiscalarVariableTime(scalarSets[set], pointSets[set])
                    consume(firstByte(of: sum))
                }
            },
            libsodium: nil),
    ]
}

/// Scalar arithmetic rows (bytes → bytes on both sides).
func scalarComparisons(_ fixture: Fixture) -> [Comparison] {
    let sodium = fixture.sodium
    let mask = Fixture.poolMask
    let output = fixture.outputBuffer
    return [
        Comparison(
            name: "scalar multiplication (bytes → bytes)",
            sintra: { iterations in
                for index in 0..<iterations {
                    let first = try! Scalar(canonicalBytes: fixture.scalarBytes[index & mask])
                    let second = try! Scalar(canonicalBytes: fixture.scalarBytes[(index + 1) & mask])
                    consume((first * second).bytes)
                }
            },
            libsodium: { iterations in
                let multiply = sodium.scalarMultiplyScalars
                for index in 0..<iterations {
                    multiply(output, fixture.scalarPointer(index & mask), fixture.scalarPointer((index + 1) & mask))
                    consume(output[0])
                }
            }),
        Comparison(
            name: "scalar reduction of 64 bytes",
            sintra: { iterations in
                for index in 0..<iterations {
                    consume(Scalar(reducing64: fixture.uniformBytes[index & mask]).bytes)
                }
            },
            libsodium: { iterations in
                let reduce = sodium.scalarReduce
                for index in 0..<iterations {
                    reduce(output, fixture.uniformPointer(index & mask))
                    consume(output[0])
                }
            }),
    ]
}

/// Threshold coin and TDH2 rows go here (share, verify share, combine; encrypt, decrypt share, combine).
/// libsodium has no counterpart, so their `libsodium` closure stays nil and the table shows a dash; the
/// ratio that matters for them is against the group rows above, which bound their cost.
/// Threshold coin and TDH2 rows (Sintra only: libsodium has no threshold schemes; each row costs a few group
/// operations, whose ratios to libsodium are in the rows above). Keys for n = 4 (t = 1) and n = 31 (t = 10).
func thresholdComparisons(_ fixture: Fixture) -> [Comparison] {
    var rows = [Comparison]()
    for (replicas, faulty) in [(4, 1), (31, 10)] {
        let keys = try! KeyDealer.deal(replicas: replicas, faulty: faulty)
        let coinKey = keys.coinPublicKey
        let encryptionKey = keys.encryptionPublicKey
        let name = Array("benchmark/abba:1/coin:1".utf8)
        let shares = keys.secrets.map { $0.coinShare.coinShare(name: name) }
        let verified = shares.map { try! coinKey.verifyCoinShare($0, name: name) }
        let label = Array("benchmark/client:1/request:1".utf8)
        let message = [UInt8](repeating: 42, count: 100)
        let ciphertext = try! encryptionKey.encrypt(message, label: label)
        let decryptionShares = keys.secrets.map {
            try! $0.encryptionShare.decryptionShare(for: ciphertext, publicKey: encryptionKey)
        }
        let verifiedDecryption = decryptionShares.map { try! encryptionKey.verifyDecryptionShare($0, for: ciphertext) }
        let shape = "n = \(replicas), t = \(faulty)"
        let needed = faulty + 1
        rows += [
            Comparison(name: "coin: share with proof (\(shape))", sintra: { iterations in
                for index in 0..<iterations {
                    consume(keys.secrets[index % replicas].coinShare.coinShare(name: name).value.encoded)
                }
            }),
            Comparison(name: "coin: verify a share (\(shape))", sintra: { iterations in
                for index in 0..<iterations {
                    let share = try! coinKey.verifyCoinShare(shares[index % replicas], name: name)
                    consume([UInt8(truncatingIfNeeded: share.share.index)])
                }
            }),
            Comparison(name: "coin: combine \(needed) verified shares (\(shape))", sintra: { iterations in
                for _ in 0..<iterations {
                    consume(try! coinKey.combineCoin(Array(verified.prefix(needed)), name: name).bytes)
                }
            }),
            Comparison(name: "TDH2: encrypt 100 B (\(shape))", sintra: { iterations in
                for _ in 0..<iterations { consume(try! encryptionKey.encrypt(message, label: label).body) }
            }),
            Comparison(name: "TDH2: check ciphertext validity (\(shape))", sintra: { iterations in
                for _ in 0..<iterations { consume([encryptionKey.isValid(ciphertext) ? 1 : 0]) }
            }),
            Comparison(name: "TDH2: decryption share with proof (\(shape))", sintra: { iterations in
                for index in 0..<iterations {
                    let share = try! keys.secrets[index % replicas].encryptionShare.decryptionShare(
                        for: ciphertext, publicKey: encryptionKey)
                    consume(share.value.encoded)
                }
            }),
            Comparison(name: "TDH2: verify a decryption share (\(shape))", sintra: { iterations in
                for index in 0..<iterations {
                    let share = try! encryptionKey.verifyDecryptionShare(
                        decryptionShares[index % replicas], for: ciphertext)
                    consume([UInt8(truncatingIfNeeded: share.share.index)])
                }
            }),
            Comparison(name: "TDH2: combine \(needed) shares and decrypt (\(shape))", sintra: { iterations in
                for _ in 0..<iterations {
                    consume(try! encryptionKey.decrypt(ciphertext, shares: Array(verifiedDecryption.prefix(needed))))
                }
            }),
        ]
    }
    return rows
}
