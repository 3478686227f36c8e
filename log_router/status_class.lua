-- Adds a string `status_class` ("2xx", "4xx", "5xx", ...) to access-log records.
--
-- Why: Fluent Bit's grep and rewrite_tag filters match regexes against string values only, and
-- the service logs the HTTP status as a number, so `Rule $status ^5\d\d$` would never match.
-- Records without a usable status are returned untouched (code 0: not re-encoded).
function add_status_class(tag, timestamp, record)
    local status = tonumber(record["status"])
    if status == nil or status < 100 or status > 599 then
        return 0, timestamp, record
    end
    record["status_class"] = string.format("%dxx", math.floor(status / 100))
    -- 2: record modified, timestamp kept
    return 2, timestamp, record
end
