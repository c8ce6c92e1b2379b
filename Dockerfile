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
# /webhook is where the reference webhook's image has its binary: a link to this one, so that
# a Deployment written for the reference (`command: [/webhook, ...]`) starts unchanged.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
    -o /out/usr/local/bin/irsa-webhook ./cmd/irsa-webhook \
    && ln -s /usr/local/bin/irsa-webhook /out/webhook

FROM gcr.io/distroless/static-debian12:nonroot
# A directory copy keeps the link as a link.
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/irsa-webhook"]
CMD ["serve"]
