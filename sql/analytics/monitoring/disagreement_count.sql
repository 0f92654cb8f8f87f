SELECT COUNT(*) FROM analyzer_disagreements
