//! The storage contract on both backends.

use herald_store_contract::*;
use herald_testkit::on_both_backends;

on_both_backends!(
    sql_audiences_match_the_domain_rule,
    on_postgres_the_lease_has_one_holder_until_it_expires,
    relay_assigns_contiguous_positions_that_survive_reopening,
    a_scheduled_broadcast_activates_once_however_many_schedulers_run,
    reading_twice_or_concurrently_emits_one_receipt,
    delivery_marks_keep_the_first_time_and_feed_the_counts,
    pending_stops_at_the_given_position_and_skips_delivered,
    seeding_is_idempotent_and_keeps_edits,
    a_burst_of_first_connects_gets_every_user_once,
    each_listed_user_has_its_own_roles_and_products,
    a_burst_of_pending_lookups_answers_each_its_own,
    one_batch_of_marks_over_several_broadcasts_counts_each,
    a_dead_letter_is_kept_once_per_record_and_deletes,
    open_streams_count_across_live_nodes_up_to_the_limit,
    the_relay_mark_appends_and_announcements_work,
);
