package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// PollerInstance is a row of poller_instances: a running poller and when it
// last swept.
type PollerInstance struct {
	Instance string `gorm:"primaryKey"`
	SeenAt   time.Time
}

// TableName implements gorm's Tabler.
func (PollerInstance) TableName() string { return "poller_instances" }

// PollerHeartbeat records that instance swept at now, forgets instances not
// seen since `forget`, and returns how many instances were seen since
// `alive` (itself included, so at least 1).
func PollerHeartbeat(ctx context.Context, ex Executor, instance string, now, alive, forget time.Time) (int, error) {
	db := ex.handle()
	q := db.WithContext(ctx)
	if err := q.Clauses(clause.OnConflict{UpdateAll: true}).Create(&PollerInstance{Instance: instance, SeenAt: now}).Error; err != nil {
		return 1, fmt.Errorf("poller heartbeat: %w", err)
	}
	if err := q.Where("seen_at < ?", forget).Delete(&PollerInstance{}).Error; err != nil {
		return 1, fmt.Errorf("forget stopped pollers: %w", err)
	}
	var n int64
	if err := q.Model(&PollerInstance{}).Where("seen_at >= ?", alive).Count(&n).Error; err != nil {
		return 1, fmt.Errorf("count pollers: %w", err)
	}
	return max(int(n), 1), nil
}
