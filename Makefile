# irl: build, test and benchmark. Every target fetches ONNX Runtime first when
# it is missing (tools/fetch-ort.sh, from the npm registry, into .cache/ort).
GO ?= go

.PHONY: build ort test race vet bench clean fuzz demo demo-note

# The commit goes into `irl --version` (Go's own VCS stamp is off where
# GOFLAGS has -buildvcs=false).
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)

build: ort
	$(GO) build -ldflags "-X main.commit=$(COMMIT)" -o bin/irl ./cmd/irl

ort:
	@tools/fetch-ort.sh >/dev/null

# staticcheck, pinned, installed into .cache/bin (git ignores it) from the
# Go module proxy the first time.
STATICCHECK := .cache/bin/staticcheck
$(STATICCHECK):
	GOBIN=$(CURDIR)/.cache/bin GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The test command named in README.md and run by CI.
test: ort $(STATICCHECK)
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above"; exit 1)
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) test ./...
	$(GO) test -race ./onnx/... ./tokenizer/... ./rewardhead/... ./features/... ./optim/... ./neox/... ./policy/... ./reward/... ./checkpoint/... ./ppo/...

# The paper's toy demonstration end to end: demo/report.md (about half a
# minute on 2 cores, after the build; the first build on a fresh machine
# downloads the Go modules first, about two minutes more).
demo: demo-note build
	bin/irl experiment toy --out demo --overwrite
	bin/irl audit --model demo/rlhf --base demo/sft --prompts demo/data/prompts.jsonl --out demo/audit --overwrite --quiet

demo-note:
	@echo "make demo: building bin/irl first (on a fresh machine this downloads Go modules and ONNX Runtime: about two minutes, quiet)"

bench: ort
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# Every fuzz target in the repository, one at a time (go test fuzzes one
# target per run), 60 s each. Crashers land in the package's testdata/fuzz.
fuzz: ort
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s -fuzzminimizetime 2s ./safetensors/
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime 60s -fuzzminimizetime 2s ./neox/
	$(GO) test -run '^$$' -fuzz '^FuzzIndex$$' -fuzztime 60s -fuzzminimizetime 2s ./weights/
	$(GO) test -run '^$$' -fuzz '^FuzzPickle$$' -fuzztime 60s -fuzzminimizetime 2s ./weights/
	$(GO) test -run '^$$' -fuzz '^FuzzReadHead$$' -fuzztime 60s -fuzzminimizetime 2s ./rewardhead/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadState$$' -fuzztime 60s -fuzzminimizetime 2s ./optim/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s -fuzzminimizetime 2s ./tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzEncode$$' -fuzztime 60s -fuzzminimizetime 2s ./tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeDecode$$' -fuzztime 60s -fuzzminimizetime 2s ./tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckUTF8JSON$$' -fuzztime 60s -fuzzminimizetime 2s ./tokenizer/
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime 60s -fuzzminimizetime 2s ./rows/
	$(GO) test -run '^$$' -fuzz '^FuzzTrainerState$$' -fuzztime 60s -fuzzminimizetime 2s ./ppo/

clean:
	rm -rf bin demo
