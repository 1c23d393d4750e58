// Package classifier runs RoBERTa sequence classifiers (transformers'
// RobertaForSequenceClassification and XLMRobertaForSequenceClassification,
// such as s-nlp/roberta_toxicity_classifier) on ONNX Runtime, as
// ground-truth rewards for text.
//
// The data's path is config → weights → graph → session → results:
// LoadConfig reads config.json and bounds every dimension; Load reads the
// checkpoint through package weights and checks each tensor's name, shape and
// finiteness; New builds the encoder and classification head as an ONNX graph
// (opset 17, weights read in place) and opens a session; Logits runs one
// right-padded batch, Score runs any number of token sequences in
// length-sorted batches, and Probs turns logits into probabilities. Open also
// accepts an .onnx file exported by another tool, such as torch.onnx.export.
//
// Inputs are token ids that already carry the tokenizer's special tokens
// (<s> … </s>); the head reads the first token's hidden state.
//
//	if err := onnx.Init(""); err != nil { … } // load ONNX Runtime once
//	c, err := classifier.Open("roberta_toxicity_classifier/", onnx.Options{})
//	if err != nil { … }
//	defer c.Destroy()
//	logits, err := c.Score(seqs, 32, os.Stderr) // [N, len(c.Labels())]
//	probs := c.Probs(logits)
//	toxic, err := c.LabelIndex("toxic")
//	reward := probs[i*len(c.Labels())+toxic]
package classifier
