// Generates extra reference cases for GPT-2 byte-level BPE with the
// gpt-3-encoder npm package (the encoder that produced reference.jsonl).
const { encode } = require('gpt-3-encoder')
const EOT = '<|endoftext|>'

// Deterministic PRNG (mulberry32).
let seed = 20240611
function rand() {
  seed |= 0; seed = seed + 0x6D2B79F5 | 0
  let t = Math.imul(seed ^ seed >>> 15, 1 | seed)
  t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
  return ((t ^ t >>> 14) >>> 0) / 4294967296
}
const pick = a => a[Math.floor(rand() * a.length)]

const fixed = [
  ' 2000', '2000', '0000', '00000', ' 00000000', '1000000', '000', 'aaaa', 'aaaaaaa', 'eeee',
  '!!!!', '....', '=====', '-----', '_____', '*****', '>>>>', '\\\\\\\\',
  '    ', '\n\n\n', '\t\t', '\r\n\r\n',
  'a  \n\n  b', 'a \n\n b', 'a\n \nb', 'a \n \n b', 'x\r\ny', 'end with newline\n', '\n\nstart',
  ' \n', '\n ', '  a', 'a  ', 'a   ', '  ', ' a ', 'a\t b', 'a \tb', 'a\t\tb',
  'a\u00a0b', 'a\u00a0\u00a0b', 'a\u3000b', 'a \u3000b', 'a\u2003 b', 'a\u2028b', ' \u00a0x',
  'a\u000bb\u000cc', 'a\u001cb',
  "don't", "DON'T", "it's", "'s", "''s", "'ll've", "you're", "I'M", "rock'n'roll", "x's'", "l'été",
  "'re'd'm't", " 's", "  'll", "he said 'hello'", "'", "''", "'''",
  '٣٤٥ ٦', '½ ¾', 'Ⅻ century', '²³', '①②', 'e\u0301', 'cafe\u0301 ', 'ñ vs n\u0303',
  '한국어 텍스트', 'مرحبا بالعالم', 'नमस्ते दुनिया', 'שלום עולם', 'ไทย ภาษา',
  '👩‍👩‍👧 family', '🇺🇸🇯🇵', 'a🙂b', '🙂 🙂  🙂',
  '1234567890'.repeat(10), 'a'.repeat(200), ' the'.repeat(50),
  '我们今天去公园散步然后吃了很多好吃的东西大家都很开心这是一个非常长的没有标点符号的中文句子用来测试很长的单词',
  'func main() {\n\tfmt.Println("hi")\n}\n', '{"key": [1, 2.5, null], "x": "y"}',
  '<div class="a">Hello &amp; bye</div>', 'https://a.b/c?d=e&f=g#h', '# Title\n\n- item 1\n- item 2\n',
  '$$x^2 + y_i = \\frac{1}{2}$$', 'C:\\Users\\name\\file.txt', 'user@example.com', '@@@###$$$%%%',
  '<|endoftext', 'endoftext|>', '<|', '|>',
]

const frags = [
  ' ', '  ', '   ', '\n', '\n\n', '\t', '\r\n', ' \n', '\n ', '\u00a0', '\u3000', '\u2009',
  'a', 'the', ' the', 'The', ' quick', 'brown', ' fox', 'x', 'Zebra', 'über', ' naïve', 'Ærø',
  '0', '1', '2000', ' 42', '3.14', '1,000', '٣', '½',
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", "'S", '"',
  '.', ',', '!', '?', '...', '--', '—', '(', ')', '[', ']', '{', '}', '<', '>', '/', '\\', '#', '@', '$', '%', '^', '&', '*', '_', '=', '+', '~', '`', '|', ';', ':',
  '日本', '中文', 'テキスト', 'русский', 'Ελλάδα', '한국', 'عربى', 'हिन्दी',
  '🙂', '👍🏽', '🎉', '\u0301', '\u200d',
]

const out = []
const add = (text) => out.push(JSON.stringify({ text, ids: encode(text) }))
for (const t of fixed) add(t)
for (let i = 0; i < 400; i++) {
  const n = 1 + Math.floor(rand() * 14)
  let s = ''
  for (let j = 0; j < n; j++) s += pick(frags)
  add(s)
}
// Special-token lines: HF semantics, <|endoftext|> matched first as a whole
// token, the text between encoded on its own.
const specialTexts = [
  'a<|endoftext|><|endoftext|>b', '<|endoftext|> leading space', 'trailing space <|endoftext|>',
  ' <|endoftext|> ', 'x\n\n<|endoftext|>\n\ny', '<|endoftext|>2000<|endoftext|>', '<|endoftext|<|endoftext|>|>',
  "don't<|endoftext|>'s", '<<|endoftext|>>',
]
for (const text of specialTexts) {
  const parts = text.split(EOT)
  let ids = []
  parts.forEach((p, i) => { if (i > 0) ids.push(50256); if (p.length) ids = ids.concat(encode(p)) })
  out.push(JSON.stringify({ text, ids, special: true }))
}
process.stdout.write(out.join('\n') + '\n')
