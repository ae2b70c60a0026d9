--[[
job_submit.lua: Slurm's submit-time hook for placer (JobSubmitPlugins=lua).

It asks a running `placer serve` daemon over a unix socket (one JSON line out, one back) and
never starts Python itself. Fail-open: if the daemon is absent, slower than BUDGET_S in total, or
answers garbage, the job goes in unchanged and one log line says why. Needs Debian's lua-socket
and lua-cjson. Edit the settings below to match `placer serve --socket`, its budget and back-off.
--]]
local SOCKET_PATH = "/run/placer/placer.sock"
local BUDGET_S = 0.05
-- after the daemon fails to answer in time, do not ask it again for this long: submits are serialised
-- under slurmctld's job lock, so a hung daemon would otherwise cost every queued submit the full budget
local BACKOFF_S = 1.0

local have_socket, unix = pcall(require, "socket.unix")
local have_gettime, socket = pcall(require, "socket")
local have_json, cjson = pcall(require, "cjson")

-- fail-opens since the last answered request; reported to the daemon, which counts them
placer_fail_open = placer_fail_open or 0

local function fail_open(name, why)
	placer_fail_open = placer_fail_open + 1
	slurm.log_info("placer: job %s goes in unchanged (fail-open): %s", tostring(name), tostring(why))
	return slurm.SUCCESS
end

placer_quiet_until = placer_quiet_until or 0

local function give_up(name, why, now_s)
	-- the daemon is absent or too slow: leave it alone for BACKOFF_S
	placer_quiet_until = now_s + BACKOFF_S
	return fail_open(name, why)
end

local function now()
	if have_gettime and socket.gettime then return socket.gettime() end
	return os.time()
end

local function str(v)
	if v == nil then return nil end
	return tostring(v)
end

local function num(v)
	-- Slurm's NO_VAL / INFINITE markers mean "not given"
	if v == nil or v >= 4294967294 then return nil end
	return v
end

-- An answer is applied only if every value in it is one Slurm can run: a well-formed but wrong answer
-- (another cluster's node names, a node count of a million, a negative switch count) must never make a
-- submission fail or a job wait forever; it leaves the job unchanged and counts as a fail-open.
local MAX_WAIT4SWITCH_S = 7 * 24 * 3600

local function whole(v, lo, hi)
	return type(v) == "number" and v == math.floor(v) and v >= lo and v <= hi
end

local function hostlist(v)
	return type(v) == "string" and #v > 0 and #v <= 65536 and v:match("^[%w%-%._,%[%]]+$") ~= nil
end

-- Slurm host lists ("gpu[001-004,007],n-[1-2]x[01-02]") as a set of names; nil if unreadable or over
-- `limit` names. Partitions' lists are cached: the Lua state lives as long as slurmctld.
local function expand_one(item, out, limit)
	local pre, body, rest = item:match("^([^%[]*)%[([^%]]*)%](.*)$")
	if not pre then
		out.n = out.n + 1
		out.names[item] = true
		return out.n <= limit
	end
	for part in body:gmatch("[^,]+") do
		local a, b = part:match("^(%d+)%-(%d+)$")
		if not a then a, b = part:match("^(%d+)$"), part:match("^(%d+)$") end
		if not a or tonumber(b) < tonumber(a) or tonumber(b) - tonumber(a) > limit then return false end
		for k = tonumber(a), tonumber(b) do
			if not expand_one(pre .. string.format("%0" .. #a .. "d", k) .. rest, out, limit) then return false end
		end
	end
	return true
end

local function expand_hostlist(text, limit)
	local out = {n = 0, names = {}}
	local depth, start = 0, 1
	for i = 1, #text + 1 do  -- split at commas outside brackets
		local c = text:sub(i, i)
		if c == "[" then depth = depth + 1 elseif c == "]" then depth = depth - 1 end
		if (c == "," and depth == 0) or i == #text + 1 then
			local item = text:sub(start, i - 1)
			if item ~= "" and not expand_one(item, out, limit) then return nil end
			start = i + 1
		end
	end
	return out.names
end

placer_partition_nodes = placer_partition_nodes or {}

local function partition_names(part_list, wanted)
	-- the job's partition (or the default one): its node set, or nil when it cannot be read
	for _, part in pairs(part_list or {}) do
		if (wanted and part.name == wanted) or (not wanted and part.flag_default == 1) then
			local nodes = part.nodes
			if type(nodes) ~= "string" then return nil end
			if placer_partition_nodes[nodes] == nil then
				placer_partition_nodes[nodes] = expand_hostlist(nodes, 2000000) or false
			end
			return placer_partition_nodes[nodes] or nil
		end
	end
	return nil
end

local function given(v)
	return v ~= nil and v ~= "" and v ~= slurm.NO_VAL
end

local function default_partition(part_list)
	for _, part in pairs(part_list or {}) do
		if part.flag_default == 1 then return part.name end
	end
	return nil
end

-- GPUs asked per job ("gres:gpu:l40s:4", "gres/gpu:2"); nil if none
local function gpus_per_job(tres)
	if type(tres) ~= "string" then return nil end
	for entry in tres:gmatch("[^,]+") do
		if entry:find("gpu", 1, true) then return tonumber(entry:match("[:=](%d+)$")) end
	end
	return nil
end

-- why the advice cannot be applied to this job (nil: it can)
local function advice_problem(job_desc, answer, part_list)
	local min_nodes = num(job_desc.min_nodes) or 1
	local max_nodes = num(job_desc.max_nodes)
	if answer.req_nodes ~= nil then
		if given(job_desc.req_nodes) then return "it would replace the job's own --nodelist" end
		if not hostlist(answer.req_nodes) then return "req_nodes is not a host list" end
		local advised = expand_hostlist(answer.req_nodes, 100000)
		if not advised then return "req_nodes cannot be read" end
		local members = partition_names(part_list, job_desc.partition)
		if not members then return "the partition's nodes cannot be read to check req_nodes" end
		for node in pairs(advised) do
			if not members[node] then return "node " .. node .. " is not in the job's partition" end
		end
		local count = 0
		for _ in pairs(advised) do count = count + 1 end
		if answer.min_nodes ~= count then
			return "min_nodes " .. tostring(answer.min_nodes) .. " is not the " .. count .. " advised node(s)"
		end
		-- without --nodes' maximum, more nodes than the job's minimum only where its GPUs are per job (each
		-- node needs one of them); more nodes for GPUs per node would multiply what the job gets
		local most = max_nodes or math.max(min_nodes, gpus_per_job(job_desc.tres_per_job) or min_nodes)
		if not whole(count, min_nodes, most) then
			return count .. " advised node(s) do not fit the job's node count (" .. min_nodes .. ".." .. most .. ")"
		end
	end
	if answer.req_switch ~= nil then
		if (num(job_desc.req_switch) or 0) > 0 then return "it would replace the job's own --switches" end
		if not whole(answer.req_switch, 1, math.max(min_nodes, 1)) then
			return "req_switch " .. tostring(answer.req_switch) .. " is not 1.." .. math.max(min_nodes, 1)
		end
		if answer.wait4switch ~= nil and not whole(answer.wait4switch, 0, MAX_WAIT4SWITCH_S) then
			return "wait4switch " .. tostring(answer.wait4switch) .. " is out of range"
		end
	end
	return nil
end

-- One connection kept open between submits (the Lua state lives as long as slurmctld): a submit then
-- costs one line out and one back, not a connect and a new thread in the daemon each time, which
-- matters because slurmctld waits for the answer holding its job lock.
placer_conn = placer_conn or nil

local function drop_connection()
	if placer_conn then placer_conn:close() end
	placer_conn = nil
end

-- one request line -> one answer line, or nil and why; never past `deadline`
local function exchange(payload, deadline)
	for _ = 1, 2 do
		local fresh = false
		if placer_conn == nil then
			local conn = (unix.stream or unix)()
			conn:settimeout(math.max(deadline - now(), 0.001))
			local ok, err = conn:connect(SOCKET_PATH)
			if not ok then
				conn:close()
				return nil, "cannot reach placer at " .. SOCKET_PATH .. ": " .. tostring(err)
			end
			placer_conn, fresh = conn, true
		end
		placer_conn:settimeout(math.max(deadline - now(), 0.001))
		local ok, err = placer_conn:send(payload)
		local line
		if ok then line, err = placer_conn:receive("*l") end
		if line then return line end
		drop_connection()  -- a late answer must never be read as the next job's
		if fresh or err == "timeout" then
			return nil, (ok and ("no answer within " .. BUDGET_S .. " s: ") or "send failed: ") .. tostring(err)
		end
		-- a kept connection the daemon has closed (restarted, or idle too long): once more on a new one
	end
	return nil, "the daemon closed the connection twice"
end

function slurm_job_submit(job_desc, part_list, submit_uid)
	local name = job_desc.name
	if not (have_socket and have_json) then
		return fail_open(name, "lua-socket or lua-cjson is not installed")
	end
	local request = {
		v = 1,
		name = str(name),
		user = submit_uid,
		-- the partition the job will run in: the user's, else the default one (placer keeps to its nodes)
		partition = str(job_desc.partition) or str(default_partition(part_list)),
		comment = str(job_desc.comment),
		features = str(job_desc.features),
		tres_per_node = str(job_desc.tres_per_node),
		tres_per_job = str(job_desc.tres_per_job),
		tres_per_task = str(job_desc.tres_per_task),
		tres_per_socket = str(job_desc.tres_per_socket),
		num_tasks = num(job_desc.num_tasks),
		-- CPUs it needs on each node (placer keeps it off nodes with fewer left: plugins/cpus.py); the 16-bit
		-- fields read 65534 when not given, which the daemon knows
		min_cpus = num(job_desc.min_cpus),
		pn_min_cpus = num(job_desc.pn_min_cpus),
		cpus_per_task = num(job_desc.cpus_per_task),
		ntasks_per_node = num(job_desc.ntasks_per_node),
		cpus_per_tres = str(job_desc.cpus_per_tres),
		min_nodes = num(job_desc.min_nodes),
		max_nodes = num(job_desc.max_nodes),
		exc_nodes = str(job_desc.exc_nodes),
		req_nodes = str(job_desc.req_nodes),
		shared = num(job_desc.shared),
		time_limit = num(job_desc.time_limit),
		qos = str(job_desc.qos),
		-- a job that cannot start at once (another job first, a begin time) is not advised nodes chosen now
		dependency = str(job_desc.dependency),
		begin_time = num(job_desc.begin_time),
		-- a job array or a heterogeneous job's component: left to Slurm (one node set for every task would
		-- run the tasks one at a time)
		array_inx = str(job_desc.array_inx),
		het_job_offset = num(job_desc.het_job_offset),
		-- a job in a Slurm reservation: left to Slurm (its nodes, users and times are Slurm's to honour)
		reservation = str(job_desc.reservation),
		-- the user's own --switches (0 or NO_VAL: none): never overwritten
		req_switch = num(job_desc.req_switch),
		-- salloc/srun (no batch script): someone waits at a terminal, maybe with --immediate (its wait is
		-- the client's own: job_desc.immediate reads 0), so steer mode does not hold it
		interactive = job_desc.script == nil or job_desc.script == "",
		-- --contiguous (1 when asked): placer does not choose by node names: left to Slurm
		contiguous = num(job_desc.contiguous),
		fail_open = placer_fail_open,
	}
	local started = now()
	-- when it was asked: a daemon that stalled does not decide (and reserve nodes) for jobs long gone in
	if have_gettime and socket.gettime then request.sent = started end  -- (os.time()'s whole seconds would not do)
	if started < placer_quiet_until then
		return fail_open(name, "placer did not answer a recent request in time; not asking until it has been "
			.. BACKOFF_S .. " s")
	end
	local line, err = exchange(cjson.encode(request) .. "\n", started + BUDGET_S)
	if not line then
		return give_up(name, err, now())
	end
	local decoded, answer = pcall(cjson.decode, line)
	if not decoded or type(answer) ~= "table" or type(answer.action) ~= "string" then
		drop_connection()  -- whatever is talking there, do not read its next line as an answer
		return fail_open(name, "garbled answer: " .. string.sub(line, 1, 80))
	end
	if answer.action ~= "advise" and answer.action ~= "steer" and answer.action ~= "none" then
		return fail_open(name, "unknown action " .. string.sub(answer.action, 1, 40))
	end
	if answer.action == "advise" then
		local problem = advice_problem(job_desc, answer, part_list)
		if problem then return fail_open(name, "advice not applied: " .. problem) end
	end
	placer_fail_open = 0
	if answer.action == "advise" then
		if answer.req_nodes ~= nil then
			job_desc.req_nodes = answer.req_nodes
			job_desc.min_nodes = answer.min_nodes
		end
		if answer.req_switch ~= nil then
			job_desc.req_switch = answer.req_switch
			job_desc.wait4switch = answer.wait4switch or 300
		end
	elseif answer.action == "steer" then
		if job_desc.priority == 0 then
			-- submitted held by its user (sbatch -H): theirs to release, never placer's
			slurm.log_info("placer: job %s: held by its user at submit; not steered", tostring(name))
			return slurm.SUCCESS
		end
		job_desc.priority = 0
		-- the tag goes where users cannot write (AdminComment): apply releases only jobs carrying it
		job_desc.admin_comment = (given(job_desc.admin_comment) and (job_desc.admin_comment .. " ") or "")
			.. "placer:steer"
	end
	slurm.log_info("placer: job %s: %s", tostring(name), tostring(answer.reason or answer.action))
	return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	return slurm.SUCCESS
end

slurm.log_info("placer: job_submit.lua loaded (socket %s, budget %s s)", SOCKET_PATH, BUDGET_S)
return slurm.SUCCESS
