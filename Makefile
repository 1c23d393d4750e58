# irl: build, test and benchmark. Every target fetches ONNX Runtime first when
# it is missing (tools/fetch-ort.sh, from the npm registry, into .cache/ort).
GO ?= go

.PHONY: build ort test race vet bench clean

build: ort
	$(GO) build -o bin/irl ./cmd/irl

ort:
	@tools/fetch-ort.sh >/dev/null

# The test command named in README.md and run by CI.
test: ort
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above"; exit 1)
	$(GO) vet ./...
	$(GO) test ./...
	$(GO) test -race ./onnx/... ./tokenizer/... ./rewardhead/... ./features/... ./optim/... ./policy/...

bench: ort
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

clean:
	rm -rf bin
