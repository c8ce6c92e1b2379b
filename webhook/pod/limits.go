package pod

import (
	"fmt"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// CheckSize refuses a pod spec with more containers (init and regular) than
// irsa.MaxContainers, before anything loops over them. The webhook and the mutate command
// both call it, so a manifest is mutated offline exactly when the webhook would mutate it.
// Ephemeral containers are not counted: the Spec view does not decode them (they cannot be
// set at creation, and the webhook never touches them).
func CheckSize(spec *Spec) error {
	if n := len(spec.InitContainers) + len(spec.Containers); n > irsa.MaxContainers {
		return fmt.Errorf("the pod has %d containers (init and regular), more than the %d this webhook injects credentials into", n, irsa.MaxContainers)
	}
	return nil
}
