import Foundation
import Testing
import Tokenization
import Training

/// Fine-tuning data: the exact texts records become, CSV quoting, and how batches are padded.
@Suite struct FineTuneData {
    static func file(_ text: String, _ ext: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ftdata-\(UUID()).\(ext)").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The book's Alpaca text (chapter 7), with and without an input.
    @Test func alpacaRecordsBecomeTheBooksPrompt() throws {
        let path = try Self.file(#"[{"instruction": "Name a color.", "input": "", "output": "Red."}, {"instruction": "Fix: {{name}}", "input": "teh", "output": "the"}]"#, "json")
        let ex = try InstructionData.read(path, format: .book, template: ChatTemplate(), placeholders: ["name": "Ada"])
        #expect(ex[0].segments.map(\.text) == ["Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a color.\n\n### Response:\n", "Red."])
        #expect(ex[0].segments.map(\.trained) == [false, true])
        #expect(ex[1].segments[0].text.hasSuffix("### Instruction:\nFix: Ada\n\n### Input:\nteh\n\n### Response:\n"))
        #expect(ex[1].source == path + "[1]")
    }

    /// A conversation: every assistant reply (with its end marker) trained, the rest context;
    /// the pieces put together are exactly the chat template's rendering.
    @Test func messagesTrainEveryAssistantTurn() throws {
        let line = #"{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}"#
        let path = try Self.file(line + "\n", "jsonl")
        let template = ChatTemplate(defaultSystemPrompt: "ignored when a system message is given")
        let ex = try InstructionData.read(path, format: .book, template: template)[0]
        let full = template.render([.init(.system, "S"), .init(.user, "a"), .init(.assistant, "b"), .init(.user, "c"), .init(.assistant, "d")], generationPrompt: false)
        #expect(ex.segments.map(\.text).joined() == full)
        #expect(ex.segments.filter(\.trained).map(\.text) == ["b<|im_end|>", "d<|im_end|>"])
        // Alpaca through the chat format: one user turn and the reply.
        let alpaca = try InstructionData.example(["instruction": "i", "input": "x", "output": "o"], source: "s", format: .chat, template: ChatTemplate())
        #expect(alpaca.segments.map(\.text).joined() == "<|im_start|>user\ni\n\nx<|im_end|>\n<|im_start|>assistant\no<|im_end|>\n")
    }

    /// Windows line ends: "\r\n" is one Character in Swift, so lines must split on it too.
    @Test func crlfJSONLines() throws {
        let path = try Self.file("{\"text\": \"a\"}\r\n{\"prompt\": \"p\", \"completion\": \"c\"}\r\n", "jsonl")
        let ex = try InstructionData.read(path, format: .book, template: ChatTemplate())
        #expect(ex.count == 2 && ex[1].source == path + ":2")
    }

    @Test func csvQuotingAndErrors() throws {
        let path = try Self.file("label,text\nspam,\"Win \"\"big\"\", now,\nor never\"\nham,plain \"quoted\" word\n\nham,last\n", "csv")
        let rows = try ClassificationData.read(path)
        #expect(rows.map(\.text) == ["Win \"big\", now,\nor never", "plain \"quoted\" word", "last"])
        #expect(rows.map(\.label) == ["spam", "ham", "ham"])
        #expect(rows[2].source == path + ":6")
        let unclosed = try Self.file("text,label\n\"abc,x\n", "csv")
        #expect(throws: TrainingError.self) { try ClassificationData.read(unclosed) }
        let short = try Self.file("text\tlabel\nonly text\n", "tsv")
        do { _ = try ClassificationData.read(short); Issue.record("expected an error") } catch {
            #expect("\(error)".contains(":2: 1 field(s), expected at least 2"))
        }
        let jsonl = try Self.file("{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n", "jsonl")
        do { _ = try ClassificationData.read(jsonl); Issue.record("expected an error") } catch {
            #expect("\(error)".contains(".jsonl:2: missing field \"label\""))
        }
    }

    /// Right padding: SFT targets are the next ids where trained, -100 on the prompt and the padding.
    @Test func paddedBatchesMaskPromptAndPadding() {
        let a = EncodedExample(tokens: [1, 2, 3, 4, 5], trained: [false, false, false, true, true])
        let b = EncodedExample(tokens: [6, 7, 8], trained: [false, true, true])
        let batch = PaddedBatch([a, b], pad: 0, task: .sft)
        #expect(batch.length == 4 && batch.lengths == [4, 2])
        #expect(batch.ids == [1, 2, 3, 4, 6, 7, 0, 0])
        #expect(batch.targets == [-100, -100, 4, 5, 7, 8, -100, -100])
        let groups = LengthGroupedBatches(lengths: [5, 1, 9, 2, 8, 3], batch: 2, seed: 1).groups
        #expect(groups == [[1, 3], [5, 0], [4, 2]])
    }
}
