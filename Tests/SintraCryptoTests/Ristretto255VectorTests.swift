import Testing

@testable import SintraCrypto

/// RFC 9496 Appendix A vectors and RFC 9380 / RFC 9497 hashing vectors.
@Suite struct Ristretto255VectorTests {
    private func section(_ name: String) throws -> [[String: Any]] {
        let file = try loadVectors("ristretto255-rfc9496")
        let section = try #require(file[name] as? [String: Any])
        return try #require(section["vectors"] as? [[String: Any]])
    }

    @Test func generatorMultiplesA1() throws {
        let vectors = try section("generator_multiples")
        #expect(vectors.count == 16)
        var running = GroupElement.identity
        for vector in vectors {
            let multiple = try #require(vector["multiple"] as? Int)
            let expected = hex(try #require(vector["encoding"] as? String))
            let scalar = Scalar(UInt64(multiple))
            #expect(running.encoded == expected, "sum for \(multiple)")
            #expect((scalar * GroupElement.generator).encoded == expected, "variable base \(multiple)")
            #expect(GroupElement.generatorMultiple(scalar).encoded == expected, "fixed base \(multiple)")
            #expect(
                GroupElement.multiscalarVariableTime([scalar], [.generator]).encoded == expected,
                "multiscalar \(multiple)")
            let decoded = try GroupElement(encoded: expected)
            #expect(decoded == running)
            #expect(decoded.encoded == expected)
            running = running + .generator
        }
    }

    @Test func invalidEncodingsA2() throws {
        let vectors = try section("invalid_encodings")
        #expect(vectors.count == 29)
        for vector in vectors {
            let encoding = hex(try #require(vector["encoding"] as? String))
            #expect(throws: DecodingError.self, "\(vector["category"] ?? "")") {
                try GroupElement(encoded: encoding)
            }
        }
    }

    @Test func fromUniformBytesA3() throws {
        let vectors = try section("from_uniform_bytes")
        #expect(vectors.count == 11)
        for vector in vectors {
            let input = hex(try #require(vector["input"] as? String))
            let expected = hex(try #require(vector["output"] as? String))
            #expect(GroupElement(uniformBytes: input).encoded == expected)
        }
    }

    @Test func sqrtRatioA4() throws {
        let vectors = try section("sqrt_ratio_m1")
        #expect(vectors.count == 6)
        for vector in vectors {
            let u = FieldElement(littleEndian: hex(try #require(vector["u"] as? String)))
            let v = FieldElement(littleEndian: hex(try #require(vector["v"] as? String)))
            let wasSquare = try #require(vector["was_square"] as? Bool)
            let r = hex(try #require(vector["r"] as? String))
            let result = FieldElement.sqrtRatioM1(u, v)
            #expect(result.wasSquare.isTrue == wasSquare)
            #expect(result.root.encoded() == r)
        }
    }

    @Test func expandMessageXMDSHA512() throws {
        let file = try loadVectors("hash-to-curve-expand_message_xmd_SHA-512-rfc9380")
        let domain = try #require(file["DST"] as? String)
        let tests = try #require(file["tests"] as? [[String: Any]])
        #expect(tests.count == 10)
        for test in tests {
            let message = try #require(test["msg"] as? String)
            let lengthText = try #require(test["len_in_bytes"] as? String)
            let length = try #require(Int(lengthText.dropFirst(2), radix: 16))
            let expected = hex(try #require(test["uniform_bytes"] as? String))
            let output = HashToGroup.expandMessage(Array(message.utf8), domain: Array(domain.utf8), length: length)
            #expect(output == expected, "msg \(message.prefix(16)) len \(length)")
        }
    }

    /// RFC 9497 A.1: BlindedElement = blind·HashToGroup(input) with the suite's DST, and the key derivation
    /// exercises HashToScalar.
    @Test func oprfHashToGroupAndScalar() throws {
        let file = try loadVectors("oprf-ristretto255-sha512-rfc9497")
        let modes = try #require(file["modes"] as? [[String: Any]])
        var checked = 0
        for (modeIndex, mode) in modes.enumerated() {
            let context = Array("OPRFV1-".utf8) + [UInt8(modeIndex)] + Array("-ristretto255-SHA512".utf8)
            let common = try #require(mode["common"] as? [String: Any])
            // DeriveKeyPair (RFC 9497 §3.2.1): skS = HashToScalar(seed || I2OSP(len(info), 2) || info || counter).
            let seed = hex(try #require(common["Seed"] as? String))
            let info = hex(try #require(common["KeyInfo"] as? String))
            let derive = seed + [UInt8(info.count >> 8), UInt8(info.count & 0xff)] + info + [0]
            let secretKey = HashToGroup.scalar(derive, domain: Array("DeriveKeyPair".utf8) + context)
            #expect(secretKey.bytes == hex(try #require(common["skSm"] as? String)))
            if let publicKey = common["pkSm"] as? String {
                #expect(GroupElement.generatorMultiple(secretKey).encoded == hex(publicKey))
            }
            let tests = try #require(mode["tests"] as? [[String: Any]])
            for test in tests {
                let data = try #require(test["data"] as? [String: Any])
                let inputs = try #require(data["Input"] as? [String])
                let blinds = try #require(data["Blind"] as? [String])
                let blinded = try #require(data["BlindedElement"] as? [String])
                for index in inputs.indices {
                    let element = HashToGroup.element(hex(inputs[index]), domain: Array("HashToGroup-".utf8) + context)
                    let blind = try Scalar(canonicalBytes: hex(blinds[index]))
                    #expect((blind * element).encoded == hex(blinded[index]))
                    checked += 1
                }
            }
        }
        #expect(checked >= 8)
    }
}
