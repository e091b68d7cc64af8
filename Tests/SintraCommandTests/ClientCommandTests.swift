import Foundation
import SintraClient
import SintraReplica
import Testing

@testable import sintra

/// `sintra client` argument parsing: each operation and its arity.
@Suite struct ClientCommandTests {
    @Test func operationsParseWithTheirArguments() throws {
        func operation(_ words: [String]) throws -> KeyValueStore.Operation {
            try ClientCommand.parse(["--config", "c.json"] + words).parseOperation()
        }
        #expect(try operation(["put", "k", "v"]) == .put(key: Array("k".utf8), value: Array("v".utf8)))
        #expect(try operation(["get", "k"]) == .get(key: Array("k".utf8)))
        #expect(try operation(["delete", "k"]) == .delete(key: Array("k".utf8)))
        #expect(
            try operation(["cas", "k", "-", "n"]) == .compareAndSwap(key: Array("k".utf8), expected: nil, new: Array("n".utf8)))
        #expect(
            try operation(["scan", "a", "z"])
                == .scan(from: Array("a".utf8), to: Array("z".utf8), limit: KeyValueStore.scanCountMax))
    }

    @Test func wrongAritiesAndUnknownOperationsAreRefused() {
        for words in [["put", "k"], ["get"], ["cas", "k", "v"], ["rename", "a", "b"], []] {
            #expect(throws: (any Error).self) { try ClientCommand.parse(["--config", "c.json"] + words) }
        }
    }

    /// `--key FILE` creates a 0600 key file once and loads the same key (the same client identity) after.
    @Test func aKeyFileIsCreatedPrivateAndLoadedAgain() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sintra-key-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/client.key"
        let created = try ClientCommand.loadOrCreateKey(path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try ClientCommand.loadOrCreateKey(path).publicKey == created.publicKey)
        #expect(try ClientCommand.loadOrCreateKey(folder + "/other.key").publicKey != created.publicKey)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: (any Error).self) { try ClientCommand.loadOrCreateKey(path) }
        try Data("garbage\n".utf8).write(to: URL(fileURLWithPath: folder + "/bad.key"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: folder + "/bad.key")
        #expect(throws: (any Error).self) { try ClientCommand.loadOrCreateKey(folder + "/bad.key") }
    }

    /// What `sintra client` prints and returns for a refusal: the reason, what it means, and whether to retry.
    @Test func refusalsArePrintedWithTheirMeaningAndExitStatus() throws {
        let overloaded = SintraClient.Failure.refused(.queueFull)
        #expect("\(overloaded)".contains("queue-full") && "\(overloaded)".contains("retry later"))
        #expect(ClientCommand.exitStatus(for: overloaded) == 75)
        #expect(ClientCommand.exitStatus(for: .refused(.unavailable)) == 75)
        let busy = SintraClient.Failure.refused(.overloaded)
        #expect("\(busy)".contains("overloaded") && "\(busy)".contains("retry later"))
        #expect(ClientCommand.exitStatus(for: busy) == 75)
        #expect(try ClientCommand.parse(["--config", "c.json", "--no-retry", "get", "k"]).noRetry)
        #expect(ClientCommand.exitStatus(for: .timeout(seconds: 5, replies: 1, needed: 2)) == 75)
        let forged = SintraClient.Failure.refused(.invalidSignature)
        #expect("\(forged)".contains("invalid-signature") && "\(forged)".contains("not executed"))
        for reason in RefusalReason.allCases where !reason.isRetryable {
            #expect(ClientCommand.exitStatus(for: .refused(reason)) == 1)
            let executed = reason == .replyNotKept
            #expect("\(SintraClient.Failure.refused(reason))".contains(executed ? "was executed" : "not executed"))
        }
    }
}
