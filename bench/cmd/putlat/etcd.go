package main

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdStore puts into etcd.
type etcdStore struct{ c *clientv3.Client }

func openEtcd(endpoint string) (store, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	return etcdStore{c}, nil
}

func (s etcdStore) Put(ctx context.Context, key, value string) error {
	_, err := s.c.Put(ctx, key, value)
	return err
}

func (s etcdStore) Close() error { return s.c.Close() }
