import Foundation
import Inference
import Models
import Testing
import Tokenization

/// Gemma 3 through the runtime: the GGUF file carries no chat template, so the architecture's
/// own turn format is used, and its encoding is exactly the ids llama.cpp gives the same
/// conversation written out by hand (fixture gemma3-llamacpp.json).
@Suite struct Gemma3Chat {
    static let repo = Generation.fixtures.deletingLastPathComponent().deletingLastPathComponent()
    static let path = repo.appendingPathComponent(".cache/gemma-3-270m-q4_k_m.gguf").path

    @Test func turnFormatAndStopsComeFromTheArchitecture() throws {
        guard FileManager.default.fileExists(atPath: Self.path) else { throw ModelError.file(Self.path, "missing: run scripts/fetch/gemma3.sh") }
        let loaded = try LoadedModel.load(Self.path)
        let chat = try #require(loaded.chat)
        #expect(chat.format == .gemma && chat.turnEnd == "<end_of_turn>")
        #expect(loaded.bos == 2 && loaded.stopIds.contains(106) && loaded.stopIds.contains(1))
        let rendered = chat.render([.init(.user, "What is the capital of France?")])
        #expect(rendered == "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n")
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: Generation.fixtures.appendingPathComponent("gemma3-llamacpp.json"))) as! [String: Any]
        let prompt = (fixture["prompts"] as! [[String: Any]]).first { ($0["text"] as! String) == rendered }!
        #expect(try loaded.encode(rendered) == (prompt["ids"] as! [Int]).map(Int32.init))
    }

    @Test func gemmaTemplateFoldsTheSystemMessageAndTrims() {
        let t = ChatTemplate.gemma
        let text = t.render([.init(.system, " Be brief. "), .init(.user, "Hi\n"), .init(.assistant, " Hello! "), .init(.user, "Bye")])
        #expect(text == "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
        #expect(ChatTemplate(jinja: "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content | trim }}<end_of_turn>\n{% endfor %}")?.format == .gemma)
    }
}
