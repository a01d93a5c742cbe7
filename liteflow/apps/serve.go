package apps

import (
	"fmt"

	"github.com/lakeos/lake/liteflow/adapt"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/router"
)

// ServeAdaptive sets up the LiteFlow mode of an app: a router for a model
// of inDim inputs and one output, an adapter that trains m and installs
// into the router under ac's rules, and the first snapshot, quantized on
// calib.
func ServeAdaptive(m *model.MLP, inDim int, ac adapt.Config, calib [][]float32) (*router.Router, *adapt.Adapter, error) {
	rt, err := router.New(router.Config{InputDim: inDim, OutputDim: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("apps: router: %w", err)
	}
	ad, err := adapt.New(m, rt, ac)
	if err != nil {
		return nil, nil, fmt.Errorf("apps: adapter: %w", err)
	}
	if _, err := ad.Bootstrap(calib); err != nil {
		return nil, nil, fmt.Errorf("apps: first snapshot: %w", err)
	}
	return rt, ad, nil
}
