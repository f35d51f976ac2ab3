// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb

// RouteKey is the key that picks an op's range: its key, or a delete-range's
// start. It is nil for an op with nothing set.
func (x *Op) RouteKey() []byte {
	switch o := x.GetOp().(type) {
	case *Op_Put:
		return o.Put.GetKey()
	case *Op_Delete:
		return o.Delete.GetKey()
	case *Op_DeleteRange:
		return o.DeleteRange.GetStartKey()
	case *Op_Cas:
		return o.Cas.GetKey()
	}
	return nil
}
