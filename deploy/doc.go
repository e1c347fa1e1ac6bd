// Package deploy holds Switchyard's Kubernetes packaging, not Go code: Kustomize manifests
// (kustomize/), a Helm chart (helm/switchyard), Gateway API examples (gateway-api/) and the
// container image's Dockerfile at the repository root. Its tests render every manifest
// set, decode each object strictly into the Kubernetes and Gateway API types, and check that
// the pieces agree with each other and with the router: ports and probes against the
// configuration, selectors against labels, routes against the Service, and the embedded
// configuration through the router's own validation.
//
// The tests may import internal/config and internal/app; nothing imports this package.
package deploy
