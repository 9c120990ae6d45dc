package main

import (
	"context"
	"strings"

	"github.com/hashicorp/consul/api"
)

// consulStore puts into Consul's KV store.
type consulStore struct{ kv *api.KV }

func openConsul(endpoint string) (store, error) {
	cfg := api.DefaultConfig()
	cfg.Address = endpoint
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return consulStore{c.KV()}, nil
}

// Put sets the Consul key of the template key key.
func (s consulStore) Put(ctx context.Context, key, value string) error {
	_, err := s.kv.Put(&api.KVPair{Key: strings.TrimPrefix(key, "/"), Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

func (s consulStore) Close() error { return nil }
