package main

import (
	"context"
	"errors"
	"time"

	"github.com/go-zookeeper/zk"
)

// zkStore puts into ZooKeeper: it sets the znode's data, creating it
// (its parents must exist) when missing.
type zkStore struct{ c *zk.Conn }

func openZookeeper(endpoint string) (store, error) {
	c, _, err := zk.Connect([]string{endpoint}, 30*time.Second, zk.WithLogInfo(false))
	if err != nil {
		return nil, err
	}
	return zkStore{c}, nil
}

func (s zkStore) Put(_ context.Context, key, value string) error {
	_, err := s.c.Set(key, []byte(value), -1)
	if errors.Is(err, zk.ErrNoNode) {
		_, err = s.c.Create(key, []byte(value), 0, zk.WorldACL(zk.PermAll))
	}
	return err
}

func (s zkStore) Close() error {
	s.c.Close()
	return nil
}
