import Testing

@testable import sintra

struct ReplicaCommandTests {
    private let required = ["--config", "c.json", "--id", "1", "--secret", "replica-1.secret"]

    @Test func clientConnectionLimitsParse() throws {
        let command = try ReplicaCommand.parse(
            required + ["--client-requests-max", "64", "--client-send-buffer-bytes", "65536"])
        #expect(command.clientRequestsMax == 64)
        #expect(command.clientSendBufferBytes == 65_536)
        #expect(try ReplicaCommand.parse(required).clientSendBufferBytes == nil)
    }

    @Test func aSendBufferBelowTheKernelsMinimumIsRefused() {
        #expect(throws: (any Error).self) {
            try ReplicaCommand.parse(self.required + ["--client-send-buffer-bytes", "100"])
        }
    }
}
