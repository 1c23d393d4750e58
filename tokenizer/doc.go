// Package tokenizer encodes text with a Hugging Face tokenizer.json for
// byte-level BPE models (GPT-2, Pythia / GPT-NeoX, RoBERTa), giving exactly
// the ids of Hugging Face's tokenizer.encode(text, add_special_tokens=False):
// added and special tokens such as <|endoftext|> are recognised in the text
// and encoded as their single id; no BOS/EOS or template tokens are added.
// EncodeSpecial, EncodePairSpecial and EncodeTruncated add the tokens of the
// file's post_processor, as add_special_tokens=True does (postprocess.go).
//
// It is built on github.com/sugarme/tokenizer v0.3.0, whose pipeline returns
// wrong ids on GPT-2's tokenizer.json. The parts that are right are used, the
// wrong ones are replaced here, each with a test named after the defect
// (defects_test.go):
//
//   - BPE merges of equal rank were not applied leftmost first (" 2000" became
//     " 20" + "00"): bpeModel replaces model/bpe and implements sugarme's
//     tokenizer.Model interface.
//   - Added and special tokens were dropped from the output, and
//   - added-token ids were renumbered instead of taken from the file: added
//     tokens are matched by matcher (added.go) with ids from the file.
//   - The ByteLevel pre-tokenizer split whitespace runs differently (Go's
//     regexp has no lookahead for `\s+(?!\S)`): wordLen matches GPT-2's
//     pattern by hand (pretokenize.go).
//   - The ByteLevel decoder turned characters outside the byte alphabet into
//     NUL bytes: byteLevelDecoder implements sugarme's tokenizer.Decoder.
//
// Used from sugarme: the tokenizer.Model and tokenizer.Decoder interfaces
// (bpeModel and byteLevelDecoder plug into a sugarme tokenizer.Tokenizer) and
// the byte alphabet pretokenizer.BytesChar. Tokenizer.Encode does not run
// sugarme's Tokenizer pipeline: that pipeline is where added tokens are
// dropped, and its per-character offset tracking costs time for offsets we do
// not return.
package tokenizer
