import Crypto

/// A non-interactive Chaum–Pedersen proof (Crypto '92) that log_G(A) = log_H(B), made non-interactive with
/// the Fiat–Shamir transform over SHA-512.
///
/// The challenge hashes a domain tag (which protocol), a context string (which statement: the coin name,
/// the ciphertext), and all six group elements, so a proof made for one statement never verifies for
/// another. Encoded as challenge ‖ response (64 bytes), as in RFC 9497.
public struct EqualityProof: Sendable, Equatable {
    public let challenge: Scalar
    public let response: Scalar

    public static let encodedLength = 64

    public init(challenge: Scalar, response: Scalar) {
        self.challenge = challenge
        self.response = response
    }

    public init(encoded bytes: some Collection<UInt8>) throws(DecodingError) {
        var reader = ByteReader(bytes, context: "equality proof")
        challenge = try reader.readScalar()
        response = try reader.readScalar()
        try reader.finish()
    }

    public var encoded: [UInt8] { challenge.bytes + response.bytes }

    /// The statement: A = x·G and B = x·H.
    public struct Statement: Sendable {
        public let baseG: GroupElement
        public let publicA: GroupElement
        public let baseH: GroupElement
        public let publicB: GroupElement

        public init(baseG: GroupElement, publicA: GroupElement, baseH: GroupElement, publicB: GroupElement) {
            self.baseG = baseG
            self.publicA = publicA
            self.baseH = baseH
            self.publicB = publicB
        }
    }

    /// Proves the statement with witness x. The nonce is hedged: derived from the witness, the statement
    /// and fresh randomness, so neither a weak generator nor a repeated statement leaks x.
    public static func prove<Generator: RandomNumberGenerator>(
        witness: Scalar, statement: Statement, domain: String, context: [UInt8], using generator: inout Generator
    ) -> EqualityProof {
        let prefix = transcriptPrefix(statement: statement, domain: domain, context: context)
        var nonceInput = ByteWriter(capacity: prefix.count + 96)
        nonceInput.write(witness)
        nonceInput.writeFixed(randomBytes(32, using: &generator))
        nonceInput.writeFixed(prefix)
        let nonce = HashToGroup.scalar(nonceInput.bytes, domain: Array("sintra-v1/dleq-nonce".utf8))
        let commitmentG = GroupElement.generatorMultipleIfGenerator(nonce, base: statement.baseG)
        let commitmentH = nonce * statement.baseH
        let challenge = challenge(prefix: prefix, commitmentG: commitmentG, commitmentH: commitmentH)
        return EqualityProof(challenge: challenge, response: nonce + challenge * witness)
    }

    /// Checks the proof (variable time: all inputs are public).
    public func verifies(statement: Statement, domain: String, context: [UInt8]) -> Bool {
        let prefix = EqualityProof.transcriptPrefix(statement: statement, domain: domain, context: context)
        let negatedChallenge = -challenge
        // z·G − c·A and z·H − c·B reproduce the prover's commitments exactly when the proof is valid.
        let commitmentG = GroupElement.multiscalarVariableTime(
            [response, negatedChallenge], [statement.baseG, statement.publicA])
        let commitmentH = GroupElement.multiscalarVariableTime(
            [response, negatedChallenge], [statement.baseH, statement.publicB])
        let expected = EqualityProof.challenge(prefix: prefix, commitmentG: commitmentG, commitmentH: commitmentH)
        return expected == challenge
    }

    private static func transcriptPrefix(statement: Statement, domain: String, context: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: 200 + context.count)
        writer.writeVariable(Array(domain.utf8))
        writer.writeVariable(context)
        writer.write(statement.baseG)
        writer.write(statement.publicA)
        writer.write(statement.baseH)
        writer.write(statement.publicB)
        return writer.bytes
    }

    private static func challenge(prefix: [UInt8], commitmentG: GroupElement, commitmentH: GroupElement) -> Scalar {
        var writer = ByteWriter(capacity: prefix.count + 64)
        writer.writeFixed(prefix)
        writer.write(commitmentG)
        writer.write(commitmentH)
        return HashToGroup.scalar(writer.bytes, domain: Array("sintra-v1/dleq-challenge".utf8))
    }
}

extension GroupElement {
    /// scalar·base in constant time, with the fixed-base table when base is the generator.
    static func generatorMultipleIfGenerator(_ scalar: Scalar, base: GroupElement) -> GroupElement {
        base == .generator ? generatorMultiple(scalar) : scalar * base
    }
}
