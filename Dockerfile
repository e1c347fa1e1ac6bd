# syntax=docker/dockerfile:1
# Switchyard's container image: a static binary (no cgo, no libc) on a distroless base, run as
# the non-root user 65532. Build with
#   docker build -t switchyard --build-arg VERSION=$(git describe --tags --always) .

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X github.com/switchyard-ai/switchyard/internal/app.Version=${VERSION}" \
      -o /out/switchyard ./cmd/switchyard

# static: CA certificates, /etc/passwd with nonroot, tzdata; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchyard /switchyard
USER 65532:65532
# Data plane (OpenAI HTTP, KServe REST and gRPC) and admin (/metrics, /healthz, /readyz).
EXPOSE 8080 9090
ENTRYPOINT ["/switchyard"]
CMD ["serve", "--config=/etc/switchyard/config/switchyard.yaml"]
