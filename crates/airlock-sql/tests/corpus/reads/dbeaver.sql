SELECT current_schema(),session_user
-- next
SHOW search_path
-- next
SET search_path = "app","$user",public
-- next
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datallowconn AND NOT datistemplate OR db.datname =$1 ORDER BY db.datname
-- next
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname
-- next
select * from pg_catalog.pg_settings where name=$1
-- next
SELECT c.oid,c.*,d.description,(select array_agg(i.inhparent) from pg_catalog.pg_inherits i where i.inhrelid = c.oid) parents
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0
WHERE c.relnamespace=$1 AND c.relkind not in ('i','c')
-- next
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
WHERE NOT a.attisdropped AND c.oid=$1 ORDER BY a.attnum
-- next
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid
WHERE t.typname IS NOT NULL
AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')
-- next
SELECT p.oid,p.*,pg_catalog.pg_get_expr(p.proargdefaults, 0)as arg_defaults,d.description
FROM pg_catalog.pg_proc p
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=p.oid AND d.objsubid=0 AND d.classoid='pg_proc'::regclass
WHERE p.pronamespace=$1
ORDER BY p.proname
-- next
SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans
FROM pg_catalog.pg_index i
INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid
INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid
LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid
WHERE  i.indrelid=$1 ORDER BY tabrelname, c.relname
-- next
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) end as consrc_copy
FROM pg_catalog.pg_constraint c
INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
WHERE t.relnamespace=$1
ORDER BY c.oid
-- next
select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size
FROM pg_class c
WHERE c.relnamespace=$1
-- next
SELECT pg_catalog.pg_get_viewdef($1, true)
-- next
SELECT pg_catalog.pg_get_functiondef($1)
-- next
SELECT last_value, is_called FROM app.seq1
-- next
SELECT * from pg_catalog.pg_sequences WHERE schemaname=$1 AND sequencename=$2
-- next
SELECT x.* FROM app.accounts x
LIMIT 200
-- next
SELECT COUNT(*) FROM (SELECT x.* FROM app.accounts x WHERE balance > 10) dbvrcnt
-- next
SELECT sa.* FROM pg_catalog.pg_stat_activity sa
-- next
select l.*, a.usename, a.query from pg_catalog.pg_locks l left join pg_catalog.pg_stat_activity a on a.pid = l.pid
-- next
SELECT pg_catalog.pg_is_in_recovery()
-- next
SELECT e.oid, e.*, n.nspname FROM pg_catalog.pg_extension e LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace ORDER BY e.oid
-- next
SELECT a.oid,a.* FROM pg_catalog.pg_roles a ORDER BY a.oid
-- next
select pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(current_database()))
-- next
SELECT pg_catalog.pg_get_triggerdef($1, true)
-- next
SELECT t.oid,t.*,c.relkind FROM pg_catalog.pg_trigger t, pg_catalog.pg_class c WHERE t.tgrelid = c.oid AND NOT tgisinternal AND c.relnamespace=$1
-- next
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), pg_catalog.pg_get_serial_sequence($1, a.attname) FROM pg_catalog.pg_attribute a WHERE a.attrelid = $2::regclass AND a.attnum > 0
-- next
select pg_catalog.pg_get_keywords()
-- next
SELECT pg_catalog.obj_description($1::oid, 'pg_class'), pg_catalog.col_description($1::oid, 1)
-- next
SELECT pid, usename, application_name, client_addr, state, query_start, now() - query_start AS runtime, wait_event_type, wait_event, query FROM pg_stat_activity WHERE state <> 'idle' ORDER BY runtime DESC NULLS LAST
-- next
select pg_catalog.pg_postmaster_start_time(), pg_catalog.version(), pg_catalog.inet_server_addr(), pg_catalog.inet_server_port(), pg_backend_pid()
-- next
SELECT pg_catalog.pg_tablespace_location(oid), spcname FROM pg_catalog.pg_tablespace
