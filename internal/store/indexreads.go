package store

import (
	"context"
	"fmt"
)

// IndexRowsRead is the session's count of index entries that scans walked
// beyond their starting points: returned to the server (Handler_read_next,
// Handler_read_prev) or filtered by the index condition inside the engine
// (Handler_icp_attempts). Read it before and after the code under test on
// a pool of one connection (MySQL only): the difference is what that
// code's scans read, whatever else the server is doing.
func IndexRowsRead(ctx context.Context, ex Executor) (int64, error) {
	db := ex.handle()
	rows, err := db.WithContext(ctx).Raw("SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_next', 'Handler_read_prev', 'Handler_icp_attempts')").Rows()
	if err != nil {
		return 0, fmt.Errorf("read the session's index counters: %w", err)
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return 0, err
		}
		total += v
	}
	return total, rows.Err()
}

// StatementsReceived is MariaDB's count of statements received from all
// clients since it started (global Questions). The difference over a run,
// divided by the work done, is the statements that work cost — the
// benchmarks' figure, on a server nothing else uses meanwhile (MySQL only).
func StatementsReceived(ctx context.Context, ex Executor) (int64, error) {
	var row struct {
		VariableName string `gorm:"column:Variable_name"`
		Value        int64  `gorm:"column:Value"`
	}
	if err := ex.handle().WithContext(ctx).Raw("SHOW GLOBAL STATUS LIKE 'Questions'").Scan(&row).Error; err != nil {
		return 0, fmt.Errorf("read MariaDB's statement count: %w", err)
	}
	return row.Value, nil
}
