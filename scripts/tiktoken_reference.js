// Makes reference GPT-2 token ids with npm tiktoken (the tokenizer the suite must match).
// Usage: NODE_PATH=build/node/node_modules node scripts/tiktoken_reference.js SAMPLES.json > IDS.json
// SAMPLES.json is a JSON array of strings; the output is a JSON array of id arrays
// (encode_ordinary semantics: "<|endoftext|>" in text is plain text).
const fs = require("fs");
const { get_encoding } = require("tiktoken");
const samples = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const enc = get_encoding("gpt2");
const out = samples.map((s) => Array.from(enc.encode_ordinary(s)));
enc.free();
process.stdout.write(JSON.stringify({ tokenizer: "tiktoken@1.0.22 gpt2", ids: out }) + "\n");
