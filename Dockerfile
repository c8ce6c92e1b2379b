# Multi-stage build: a static binary on a distroless, non-root base.
FROM golang:1.27.3 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY webhook/ webhook/
COPY certs/ certs/
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
    -o /out/irsa-webhook ./cmd/irsa-webhook

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/irsa-webhook /usr/local/bin/irsa-webhook
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/irsa-webhook"]
CMD ["serve"]
